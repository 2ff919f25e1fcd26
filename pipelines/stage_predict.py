"""Stage 3: per-view depth (+ normals, confidence) from a predictor, one npz per view on disk.

Predictions stream to disk as they are made, so memory does not grow with the number of views
and a killed run resumes at the first view without a finished file.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipelines.executors import (
    ExecutorConfig,
    ExecutorError,
    PredictorFactory,
    run_predictions,
)
from pipelines.predictors import prediction_path
from pipelines.workspace import Stage
from recon.atomic import write_npz
from recon.colmap_model import SparseScene
from recon.errors import InputError
from recon.records import MonoPrediction

log = logging.getLogger(__name__)


def predict_views(
    scene: SparseScene,
    factory: PredictorFactory,
    stage: Stage,
    batch_size: int,
    executor: ExecutorConfig | None = None,
) -> Path:
    """Write `<stage>/<stem>.npz` for every registered view; returns the stage folder.

    `factory` builds the predictor where the executor runs it (only when a view is left to
    do: a resumed run with every file present loads no model). Views whose prediction kept
    failing (Ray executor) are listed in the stage result as `failed_predictions` and left
    out downstream; a rerun tries them again.
    """
    if stage.done and not stage.result().get("failed_predictions"):
        return stage.path
    out = stage.begin()
    todo = [n for n in scene.names if not prediction_path(out, n).is_file()]
    if len(todo) < len(scene.names):
        log.info(
            "predictions: %d of %d views already done",
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
    bad = [n for n in present if not _has_finite_values(out, n)]
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
    return out


def without_failed_views(scene: SparseScene, stage: Stage) -> SparseScene:
    """The scene without the views the predict stage could not predict (none: unchanged)."""
    failed = stage.result().get("failed_predictions") or {}
    if not failed:
        return scene
    return replace(scene, names=[n for n in scene.names if n not in failed])


def _has_finite_values(stage_dir: Path, name: str) -> bool:
    with np.load(prediction_path(stage_dir, name), allow_pickle=False) as data:
        return bool(np.isfinite(data["values"]).any())


def save_prediction(path: Path, pred: MonoPrediction) -> None:
    arrays = {
        "values": pred.values.astype(np.float32),
        "space": np.array(pred.space),
        "producer": np.array(pred.producer),
        "normal_convention": np.array("opencv"),
    }
    if pred.normal is not None:
        arrays["normal"] = pred.normal.astype(np.float32)
    if pred.confidence is not None:
        arrays["confidence"] = pred.confidence.astype(np.float32)
    write_npz(path, **arrays)


def load_prediction(stage_dir: Path, name: str) -> MonoPrediction:
    path = prediction_path(stage_dir, name)
    try:
        data = np.load(path, allow_pickle=False)
        return MonoPrediction(
            values=data["values"],
            space=str(data["space"]),  # type: ignore[arg-type]
            normal=data["normal"] if "normal" in data.files else None,
            confidence=data["confidence"] if "confidence" in data.files else None,
            producer=str(data["producer"]),
        )
    except Exception as exc:
        raise InputError(
            f"unreadable prediction ({exc})", path=path, fix="delete it; the next run redoes it"
        ) from exc
