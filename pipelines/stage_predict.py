"""Stage 3: per-view depth (+ normals, confidence) from a predictor, one npz per view on disk.

Predictions stream to disk as they are made, so memory does not grow with the number of views
and a killed run resumes at the first view without a finished file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.predictors import Predictor, prediction_path
from pipelines.workspace import Stage
from recon.atomic import write_npz
from recon.colmap_model import SparseScene
from recon.errors import InputError
from recon.progress import progress
from recon.records import MonoPrediction

log = logging.getLogger(__name__)


def predict_views(scene: SparseScene, predictor: Predictor, stage: Stage, batch_size: int) -> Path:
    """Write `<stage>/<stem>.npz` for every registered view; returns the stage folder."""
    if stage.done:
        return stage.path
    out = stage.begin()
    todo = [n for n in scene.names if not prediction_path(out, n).is_file()]
    if len(todo) < len(scene.names):
        log.info(
            "predictions: %d of %d views already done",
            len(scene.names) - len(todo),
            len(scene.names),
        )
    with progress(total=len(todo), desc="predict", unit="view", leave=False) as bar:
        for chunk in _chunks(todo, batch_size):
            frames = [scene.frame(n) for n in chunk]
            for frame, pred in zip(frames, predictor.predict(frames)):
                save_prediction(prediction_path(out, frame.name), pred)
            bar.update(len(chunk))
    # Over every view, also those an interrupted run predicted: the summary of a resumed run
    # must equal an uninterrupted one's.
    bad = [n for n in scene.names if not _has_finite_values(out, n)]
    for name in bad:
        log.warning("%s: prediction has no finite values; view skipped", name)
    if todo:
        producer, space = predictor.name, predictor.space
    else:  # all done by an interrupted run: read what made them instead of loading a model
        first = load_prediction(out, scene.names[0])
        producer, space = first.producer, first.space
    stage.finish({"producer": producer, "space": space, "empty_predictions": bad})
    return out


def _has_finite_values(stage_dir: Path, name: str) -> bool:
    with np.load(prediction_path(stage_dir, name), allow_pickle=False) as data:
        return bool(np.isfinite(data["values"]).any())


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


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
