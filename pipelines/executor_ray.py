"""The Ray executor: the predictor runs in a pool of Ray actors, each loading the model once.

Why a plain actor pool rather than Ray Data's `map_batches`: the work is a list of a few
thousand views, each a file, and what matters is per-view control (skip the done ones, write
each as it arrives, count a view's failures, report it instead of failing the run). A pool of
actors fed by `ray.wait` gives exactly that with Ray core alone; Ray Data would add pyarrow
blocks, its own retry and scheduling layer, and seconds of start-up, for no gain here.

Data flow: this process (the driver) loads each batch's frames and sends them to an idle
worker; the worker returns the predictions; the driver writes each view's file (atomically)
as it arrives. Workers therefore need no access to the workspace or the photos, so a cluster
needs no shared filesystem; only the model checkpoints must be loadable on every node. At most
one batch per worker is in flight, so the driver's memory does not grow with the view count.

Failures: a worker process that dies (killed, out of memory, node lost) is restarted by Ray
(`max_restarts`) and the batch it held is retried (`max_task_retries`); a worker whose restarts
are spent is replaced while the restart budget lasts. A batch whose prediction raises is split
into single views; a view that fails `view_attempts` times is returned in `failed`. Errors that
are the user's to fix (a missing checkpoint) stop the run at once with their own message.
Ctrl-C (or SIGTERM) kills the workers and stops a Ray started here; finished views stay on disk.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.executor_base import (
    ExecutorConfig,
    ExecutorError,
    ExecutorResult,
    FrameLoader,
    PredictorFactory,
    ViewWriter,
    chunks,
)
from recon.errors import ReconError
from recon.progress import progress
from recon.records import Frame, MonoPrediction

log = logging.getLogger(__name__)

INSTALL_FIX = 'pip install "lotus-recon[ray]"'


def import_ray() -> Any:
    """The `ray` module, or a one-line error naming the install that fixes it."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(
            "--executor ray needs the Ray extra, which is not installed", fix=INSTALL_FIX
        ) from exc
    return ray


class PredictWorker:
    """One model per worker process: built on the first batch, reused for every later one."""

    def __init__(self, factory: PredictorFactory, threads: int):
        self._factory = factory
        self._threads = threads
        self._predictor = None

    def predict(self, frames: list[Frame]) -> list[MonoPrediction]:
        if self._predictor is None:
            from recon.progress import set_progress

            set_progress(False)  # bars from many workers would garble the driver's console
            self._predictor = self._factory()
            _set_torch_threads(self._threads)
        return self._predictor.predict(frames)


def _set_torch_threads(threads: int) -> None:
    import sys

    torch = sys.modules.get("torch")  # only a torch model needs it; never import it for that
    if torch is not None:
        torch.set_num_threads(threads)


def run_on_ray(
    config: ExecutorConfig,
    names: Sequence[str],
    load_frame: FrameLoader,
    factory: PredictorFactory,
    write: ViewWriter,
) -> ExecutorResult:
    """Predict `names` on Ray; `write(name, prediction)` runs here as each view arrives."""
    ray = import_ray()
    started = _connect(ray, config)
    pool: _Pool | None = None
    try:
        batches = list(chunks(list(names), config.views_per_task))
        pool = _Pool(ray, config, factory, min(len(batches), _worker_count(ray, config)))
        return _drive(ray, pool, config, batches, load_frame, write)
    finally:
        if pool is not None:
            pool.close()
        if started:
            ray.shutdown()


def _connect(ray: Any, config: ExecutorConfig) -> bool:
    """Join `config.address`, reuse a Ray already initialised here, or start a local one.
    Returns True when this call started Ray (and the run must stop it)."""
    if ray.is_initialized():
        return False
    with _python_signal_handlers():
        return _init(ray, config)


@contextlib.contextmanager
def _python_signal_handlers() -> Iterator[None]:
    """Keep this process's SIGINT/SIGTERM handlers across `ray.init`, whose C++ core installs
    a failure-signal handler that dumps a stack and aborts (exit 134) on SIGTERM instead of
    letting the CLI unwind (stop the workers, free the lock, exit 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _init(ray: Any, config: ExecutorConfig) -> bool:
    try:
        if config.address:
            ray.init(address=config.address, log_to_driver=False)
            return True  # disconnects this driver only; the cluster keeps running
        # "local": a fresh instance for this run, never a cluster that `ray start` left
        # running on this machine (joining one is what --ray-address auto is for).
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    except ConnectionError as exc:
        raise ExecutorError(
            f"cannot reach the Ray cluster at {config.address} ({exc})",
            fix="start it with `ray start --head` or pass --ray-address of a running head node",
        ) from exc
    return True


def _worker_count(ray: Any, config: ExecutorConfig) -> int:
    """One per GPU when the cluster has GPUs, else CPUs // cpus_per_worker; capped by what
    the cluster can place (an actor that cannot be placed would hold its batch forever)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    fits = gpus if gpus else max(1, cpus // config.cpus_per_worker)
    wanted = config.workers or fits
    if wanted > fits:
        log.warning("ray: %d workers asked for, the cluster fits %d; using %d", wanted, fits, fits)
    return min(wanted, fits)


class _Pool:
    """The worker actors, replacing a dead one while the restart budget lasts."""

    def __init__(self, ray: Any, config: ExecutorConfig, factory: PredictorFactory, size: int):
        self.ray, self.config = ray, config
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = 1 if gpus else config.cpus_per_worker
        self._cls = ray.remote(
            num_cpus=cpus,
            num_gpus=1 if gpus else 0,
            max_restarts=config.max_restarts,
            max_task_retries=config.max_restarts,
        )(PredictWorker)
        # Passed by value (a small picklable callable): a restarted actor must not depend on
        # an object-store copy that could be lost with a node.
        self._factory = factory
        self._threads = cpus
        self.spare = config.max_restarts * size  # replacements for workers beyond restarts
        self.idle = deque(self._new() for _ in range(size))
        self.all = list(self.idle)
        log.info("ray: %d %s worker(s)", size, "GPU" if gpus else "CPU")

    def _new(self) -> Any:
        return self._cls.remote(self._factory, self._threads)

    def replace(self, dead: Any) -> None:
        if self.spare <= 0:
            return
        self.spare -= 1
        worker = self._new()
        self.all.append(worker)
        self.idle.append(worker)

    def close(self) -> None:
        for worker in self.all:
            self.ray.kill(worker, no_restart=True)


@dataclass
class _Task:
    worker: Any
    names: list[str]
    attempts: int  # failed attempts of these views so far


def _drive(
    ray: Any,
    pool: _Pool,
    config: ExecutorConfig,
    batches: list[list[str]],
    load_frame: FrameLoader,
    write: ViewWriter,
) -> ExecutorResult:
    """Feed idle workers, write what comes back, requeue what failed."""
    queue: deque[tuple[list[str], int]] = deque((b, 0) for b in batches)
    running: dict[Any, _Task] = {}
    result = ExecutorResult()
    total = sum(len(b) for b in batches)
    with progress(total=total, desc="predict (ray)", unit="view", leave=False) as bar:
        while queue or running:
            while queue and pool.idle:
                batch, attempts = queue.popleft()
                worker = pool.idle.popleft()
                ref = worker.predict.remote([load_frame(n) for n in batch])
                running[ref] = _Task(worker, batch, attempts)
            if not running:
                raise ExecutorError(
                    "every Ray worker died and the restart budget is spent",
                    fix="see the Ray logs (out of memory?); rerun to resume, "
                    "or raise executor.max_restarts",
                )
            (ref,), _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ref)
            done = _collect(ray, ref, task, pool, config, queue, result)
            for name, pred in done:
                write(name, pred)
                result.record(name, pred)
            bar.update(len(done) + sum(1 for n in task.names if n in result.failed))
    return result


def _collect(
    ray: Any,
    ref: Any,
    task: _Task,
    pool: _Pool,
    config: ExecutorConfig,
    queue: deque,
    result: ExecutorResult,
) -> list[tuple[str, MonoPrediction]]:
    """The finished task's (name, prediction) pairs; on failure, requeue or mark failed."""
    try:
        preds = ray.get(ref)
    except ray.exceptions.RayActorError as exc:  # the worker is gone for good
        pool.replace(task.worker)
        _retry(task, _one_line(exc), config, queue, result)
        return []
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ReconError):
            raise cause from None  # the user's to fix (a bad checkpoint): fail as locally
        pool.idle.append(task.worker)
        _retry(task, _one_line(cause or exc), config, queue, result)
        return []
    pool.idle.append(task.worker)
    return list(zip(task.names, preds))


def _retry(
    task: _Task, reason: str, config: ExecutorConfig, queue: deque, result: ExecutorResult
) -> None:
    """Split a failed batch into single views (one bad view must not sink its batch-mates);
    a single view is retried until it has failed `view_attempts` times."""
    if len(task.names) > 1:
        queue.extend(([n], task.attempts) for n in task.names)
        return
    attempts = task.attempts + 1
    name = task.names[0]
    if attempts < config.view_attempts:
        queue.append(([name], attempts))
        return
    log.warning("%s: prediction failed %d times (%s); view left out", name, attempts, reason)
    result.failed[name] = reason


def _one_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {text}"[:300]
