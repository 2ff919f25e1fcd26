"""Stage 3: per-view depth (+ normals, confidence) from a predictor, one npz per view on disk.

Predictions stream to disk as they are made, so memory does not grow with the number of views
and a killed run resumes at the first view without a finished file. Where the model runs is the
executor's choice (pipelines.executors: this process or Ray workers); the files are the same.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pipelines.executors import (
    ExecutorConfig,
    ExecutorError,
    PredictorFactory,
    run_predictions,
)
from pipelines.view_files import (
    ViewFiles,
    has_finite_values,
    load_prediction,
    prediction_path,
    save_prediction,
)
from pipelines.workspace import Stage
from recon.colmap_model import SparseScene
from recon.records import MonoPrediction

log = logging.getLogger(__name__)


def predict_views(
    scene: SparseScene,
    factory: PredictorFactory,
    stage: Stage,
    batch_size: int,
    executor: ExecutorConfig | None = None,
) -> ViewFiles:
    """Write `<stage>/<stem>.npz` (pipelines.view_files) for every registered view; returns the
    files of the views that have one.

    `factory` builds the predictor where the executor runs it (only when a view is left to
    do: a resumed run with every file present loads no model). Views whose prediction kept
    failing (Ray executor) are listed in the stage result as `failed_predictions` and left
    out downstream; a rerun tries them again.
    """
    if stage.done and not stage.result().get("failed_predictions"):
        return _written(scene.names, stage.path)
    out = stage.begin()
    todo = [n for n in scene.names if not prediction_path(out, n).is_file()]
    if len(todo) < len(scene.names):
        log.info(
            "predict: %d of %d views already done (resuming)",
            len(scene.names) - len(todo),
            len(scene.names),
        )

    def write(name: str, pred: MonoPrediction) -> None:
        save_prediction(prediction_path(out, name), pred)

    run = run_predictions(
        executor or ExecutorConfig(), todo, scene.frame, factory, write, batch_size
    )
    present = [n for n in scene.names if n not in run.failed]
    if not present:
        first = next(iter(run.failed.items()))
        raise ExecutorError(
            f"no view could be predicted; {first[0]}: {first[1]}",
            path=out,
            fix="see the log for each view's error; rerun to retry",
        )
    # Over every view, also those an interrupted run predicted: the summary of a resumed run
    # must equal an uninterrupted one's.
    bad = [n for n in present if not has_finite_values(out, n)]
    for name in bad:
        log.warning("%s: prediction has no finite values; view skipped", name)
    producer, space = run.producer, run.space
    if producer is None:  # all done by an earlier run: read what made them, load no model
        first_pred = load_prediction(out, present[0])
        producer, space = first_pred.producer, first_pred.space
    summary = {"producer": producer, "space": space, "empty_predictions": bad}
    if run.failed:
        summary["failed_predictions"] = dict(sorted(run.failed.items()))
    stage.finish(summary)
    return _written(present, out)


def without_failed_views(scene: SparseScene, stage: Stage) -> SparseScene:
    """The scene without the views the predict stage could not predict (none: unchanged)."""
    failed = stage.result().get("failed_predictions") or {}
    if not failed:
        return scene
    return replace(scene, names=[n for n in scene.names if n not in failed])


def _written(names: list[str], out) -> ViewFiles:
    return ViewFiles(out, {n: prediction_path(out, n) for n in names})
