"""What every executor shares: its settings, its result, the callables it is handed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from pipelines.predictors import Predictor
from recon.errors import ReconError
from recon.records import Frame, MonoPrediction

FrameLoader = Callable[[str], Frame]
PredictorFactory = Callable[[], Predictor]
ViewWriter = Callable[[str, MonoPrediction], None]  # (view name, its prediction) -> file


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


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
