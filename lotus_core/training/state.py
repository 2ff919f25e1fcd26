"""Resumable training state and the loss log.

`state.pt` holds the model and optimizer state dicts, the step, and every random generator the
loop draws from (torch's global RNG and the loop's own generator), so a resumed run continues
bit-identically. It is written to a temporary file and renamed: a run killed mid-write keeps
the previous state. `loss.jsonl` gets one line per logged step; on resume, lines after the
saved step are dropped so the log matches the state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"
LOG_FILE = "loss.jsonl"


def save_state(folder: Path, state: dict[str, Any]) -> Path:
    """Write `state` to folder/state.pt atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, folder / STATE_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return folder / STATE_FILE


def load_state(folder: Path) -> dict[str, Any] | None:
    """The saved state, or None when the folder has none."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state(), "loop": generator.get_state()}


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loop"])


def append_log(folder: Path, record: dict[str, Any]) -> None:
    with (folder / LOG_FILE).open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def read_log(folder: Path) -> list[dict[str, Any]]:
    path = folder / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_log(folder: Path, step: int) -> None:
    """Keep the log lines of steps <= `step` (those the saved state has seen)."""
    kept = [r for r in read_log(folder) if r["step"] <= step]
    path = folder / LOG_FILE
    if path.is_file():
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
