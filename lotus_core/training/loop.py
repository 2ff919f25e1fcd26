"""The shared optimisation loop: warm-up, clipping, mean-loss logging, resumable saves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from lotus_core.training.state import (
    append_log,
    load_state,
    restore_rng,
    rng_state,
    save_state,
    truncate_log,
)

StepFn = Callable[[int], dict[str, torch.Tensor]]  # step -> losses ("loss" is optimised)


def resume(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> int:
    """Load folder/state.pt into the model, optimizer and generators; returns its step (0 if none)."""
    state = load_state(folder)
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], generator)
    truncate_log(folder, state["step"])
    return int(state["step"])


def train_loop(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    step_fn: StepFn,
    *,
    steps: int,
    lr: float,
    warmup: int,
    save_every: int,
    log_every: int,
    on_save: Callable[[int], None] = lambda step: None,
) -> int:
    """Run `step_fn` until `steps`, resuming from folder/state.pt. Returns the final step.

    Every `log_every` steps one loss.jsonl line holds the mean losses since the last line;
    every `save_every` steps (a multiple of `log_every`, so a resume never splits a mean) the
    state is saved and `on_save(step)` writes the model. A state already at `steps` only
    rewrites the model, so a run stopped at any time is finished with `steps` = its saved step.
    """
    if save_every % log_every:
        raise ValueError("save_every must be a multiple of log_every")
    step = resume(folder, model, optimizer, generator)
    if step > steps:
        raise ValueError(f"{folder} holds a state at step {step}, past steps={steps}")
    if step == steps:  # already there: write the model from the state (e.g. after a kill)
        on_save(step)
        return step
    sums: dict[str, float] = {}
    start = time.monotonic()
    model.train()
    while step < steps:
        for group in optimizer.param_groups:  # stateless schedule: nothing to save for it
            group["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
        losses = step_fn(step)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        if step % log_every == 0 or step == steps:
            count = log_every if step % log_every == 0 else step % log_every
            record = {k: v / count for k, v in sums.items()}
            append_log(folder, {"step": step, **record, "seconds": time.monotonic() - start})
            sums = {}
        if step % save_every == 0 or step == steps:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng_state(generator),
                "step": step,
            }
            save_state(folder, state)
            on_save(step)
    return step
