"""Stage 3: per-view depth (+ normals, confidence) from a predictor, one npz per view on disk.

Predictions stream to disk as they are made, so memory does not grow with the number of views
and a killed run resumes at the first view without a finished file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pipelines.predictors import Predictor
from pipelines.view_files import (
    ViewFiles,
    has_finite_values,
    load_prediction,
    prediction_path,
    save_prediction,
)
from pipelines.workspace import Stage
from recon.colmap_model import SparseScene
from recon.progress import progress

log = logging.getLogger(__name__)


def predict_views(
    scene: SparseScene, predictor: Predictor, stage: Stage, batch_size: int
) -> ViewFiles:
    """Write `<stage>/<stem>.npz` (pipelines.view_files) for every registered view; returns
    the files."""
    if stage.done:
        return _written(scene, stage.path)
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
    bad = [n for n in scene.names if not has_finite_values(out, n)]
    for name in bad:
        log.warning("%s: prediction has no finite values; view skipped", name)
    if todo:
        producer, space = predictor.name, predictor.space
    else:  # all done by an interrupted run: read what made them instead of loading a model
        first = load_prediction(out, scene.names[0])
        producer, space = first.producer, first.space
    stage.finish({"producer": producer, "space": space, "empty_predictions": bad})
    return _written(scene, out)


def _written(scene: SparseScene, out: Path) -> ViewFiles:
    return ViewFiles(out, {n: prediction_path(out, n) for n in scene.names})


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
