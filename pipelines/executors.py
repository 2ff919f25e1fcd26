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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pipelines.predictors import Predictor
from recon.errors import ReconError
from recon.progress import progress
from recon.records import Frame, MonoPrediction

FrameLoader = Callable[[str], Frame]
PredictorFactory = Callable[[], Predictor]
ViewWriter = Callable[[str, MonoPrediction], None]  # (view name, its prediction) -> file

log = logging.getLogger(__name__)


class ExecutorError(ReconError):
    """The executor cannot run (Ray missing or unreachable, every worker gone)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """How predictions are computed. Not part of any stage hash: the files are the same."""

    kind: Literal["local", "ray"] = "local"
    # ray: join this cluster ("host:port", "ray://host:port" or "auto"); None starts a local
    # Ray for the run and stops it afterwards.
    address: str | None = None
    # ray: number of model workers; None = one per GPU, else cluster CPUs // cpus_per_worker.
    workers: int | None = None
    cpus_per_worker: int = 4  # CPU workers: cores (torch threads) each; GPU workers take 1
    views_per_task: int = 4  # views sent to a worker at a time
    max_restarts: int = 3  # a worker process that dies is restarted (and its batch retried)
    view_attempts: int = 2  # a view whose prediction raises this often is reported as failed

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("executor.workers must be >= 1 (or null for automatic)")
        if min(self.cpus_per_worker, self.views_per_task, self.view_attempts) < 1:
            raise ValueError("executor.cpus_per_worker, views_per_task, view_attempts must be >= 1")
        if self.max_restarts < 0:
            raise ValueError("executor.max_restarts must be >= 0")


@dataclass
class ExecutorResult:
    """What one executor run did. `producer`/`space` are None when no view was predicted."""

    predicted: list[str] = field(default_factory=list)  # names written, in completion order
    failed: dict[str, str] = field(default_factory=dict)  # name -> last error, one line
    producer: str | None = None
    space: str | None = None

    def record(self, name: str, pred: MonoPrediction) -> None:
        self.predicted.append(name)
        self.producer, self.space = pred.producer, pred.space


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


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
