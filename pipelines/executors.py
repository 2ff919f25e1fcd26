"""Executors: where the predict stage's model runs.

The predict stage hands an executor the names of the views still to do, a loader that turns a
name into a `Frame`, a factory that builds the predictor, and a writer called once per finished
view. The executor decides where the model runs; the writer decides where the file goes, so the
files are the same whichever executor made them.

- `local` (default): the model runs in this process, batch after batch. An error is fatal,
  as it always was.
- `ray`: the model runs in a pool of Ray actors (`pipelines.executor_ray`), each loading it
  once; a worker that dies is restarted and its batch retried, a view that keeps failing is
  reported instead of stopping the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from pipelines.executor_base import (
    ExecutorConfig,
    ExecutorError,
    ExecutorResult,
    FrameLoader,
    PredictorFactory,
    ViewWriter,
    chunks,
)
from recon.progress import progress

__all__ = ["ExecutorConfig", "ExecutorError", "ExecutorResult", "PredictorFactory", "ViewWriter"]

log = logging.getLogger(__name__)


def executor_for(config: ExecutorConfig, predictor_kind: str) -> ExecutorConfig:
    """The executor to use: precomputed prediction files are read here whatever was asked
    (reading a file needs no model, and the files are on this machine's disk)."""
    if config.kind == "ray" and predictor_kind == "file":
        log.info("--predictions files are read in this process; the Ray executor is not used")
        return replace(config, kind="local")
    return config


def check_executor(config: ExecutorConfig) -> None:
    """Fail before SfM, not after it, when the Ray extra is asked for but not installed."""
    if config.kind == "ray":
        from pipelines.executor_ray import import_ray

        import_ray()


def run_predictions(
    config: ExecutorConfig,
    names: Sequence[str],
    load_frame: FrameLoader,
    factory: PredictorFactory,
    write: ViewWriter,
    batch_size: int,
) -> ExecutorResult:
    """Predict `names` with the configured executor, calling `write` once per finished view."""
    if not names:
        return ExecutorResult()
    if config.kind == "ray":
        from pipelines.executor_ray import run_on_ray  # imports ray: only when asked for

        return run_on_ray(config, names, load_frame, factory, write)
    return run_locally(names, load_frame, factory, write, batch_size)


def run_locally(
    names: Sequence[str],
    load_frame: FrameLoader,
    factory: PredictorFactory,
    write: ViewWriter,
    batch_size: int,
) -> ExecutorResult:
    """In this process: build the predictor once, then `batch_size` views per call."""
    predictor = factory()
    result = ExecutorResult()
    with progress(total=len(names), desc="predict", unit="view", leave=False) as bar:
        for chunk in chunks(list(names), batch_size):
            frames = [load_frame(n) for n in chunk]
            for frame, pred in zip(frames, predictor.predict(frames)):
                write(frame.name, pred)
                result.record(frame.name, pred)
            bar.update(len(chunk))
    return result
