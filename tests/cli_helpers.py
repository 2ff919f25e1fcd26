"""Shared by the bad-input and resume tests: the sample scene, CLI runs, message checks."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

ROOM = Path(__file__).resolve().parents[1] / "sample_scenes" / "room_small"
# Coarse fusion (voxel = sparse-point extent / 48) keeps an end-to-end run at a few seconds.
FAST = ["--set", "fusion.voxel_divisions=48"]
MODELS = ROOM.parents[1] / "models"
# The bundled tiny Lotus models: a real predictor with no download.
TINY_MODELS = ["--lotus-depth", str(MODELS / "lotus-depth-tiny"),
               "--lotus-normal", str(MODELS / "lotus-normal-tiny")]  # fmt: skip


def expect_no_motion_error(clip: Path, out: Path, capfd) -> None:
    """`scene CLIP` with the tiny models ends with one line saying the camera did not move."""
    code, err = run_cli(["-q", "scene", clip, "-o", out, *TINY_MODELS], capfd)
    assert code == 1
    assert_one_line_error(err, "no camera motion", Path(clip).name, "lotus-recon image")
    assert not (out / "mesh.ply").exists()


def room_names(count: int, start: int = 0) -> list[str]:
    return [f"{i:04d}.jpg" for i in range(start, start + count)]


def copy_photos(dst: Path, names: list[str]) -> Path:
    """A photo folder holding `names` from the committed sample scene."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(ROOM / "images" / name, dst / name)
    return dst


def simulate_predictions(out: Path) -> Path:
    """Simulated Lotus disparity for every view of the sample scene (<stem>.npz)."""
    from sample_scenes.simulate import LOTUS_LIKE, write_predictions

    return Path(write_predictions(ROOM, out, "disparity", 0, LOTUS_LIKE))


def run_cli(argv: list, capfd) -> tuple[int, str]:
    """`lotus-recon ARGV` in this process; returns (exit code, everything on stderr).

    capfd captures file descriptor 2 too, so COLMAP's own (C++) log lines are seen as well.
    """
    from pipelines.cli import main

    capfd.readouterr()  # drop what the test's own setup printed
    try:
        code = main([str(a) for a in argv])
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            handler.close()
            root.removeHandler(handler)
    return code, capfd.readouterr().err


def assert_one_line_error(err: str, *needles: object) -> str:
    """stderr is exactly one ERROR line holding each needle and a fix; no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("ERROR ") and "fix:" in line, line
    for needle in needles:
        assert str(needle) in line, line
    return line


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def skipped_reasons(out: Path) -> dict[str, str]:
    return {s["name"]: s["reason"] for s in report(out)["images"]["skipped"]}


def cameras(out: Path) -> dict[str, dict]:
    return json.loads((out / "cameras.json").read_text())["images"]


def stage_dirs(out: Path, tag: str) -> list[Path]:
    return sorted((out / "work").glob(f"{tag}-*"))


def scene_argv(sample: dict, out: Path, *extra, photos=None, preds=None) -> list:
    """Argv of a scene run that reuses the clean run's COLMAP model (no SfM)."""
    return [
        "-q", "scene", photos or sample["photos"], "-o", out,
        "--predictions", preds or sample["preds"], "--colmap", sample["model"], *FAST, *extra,
    ]  # fmt: skip
