"""Stage 4: align each view's prediction to its sparse points -> metric depth per view on disk.

Per view: `<stem>.json` (the Alignment diagnostics) and, when usable, `<stem>.npz` with the
metric z-depth and the normals (layouts in `pipelines.view_files`). `alignment.json` holds the
table for all views.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.view_files import (
    ViewFiles,
    aligned_views,
    alignment_from_json,
    correction_path,
    load_alignment,
    load_prediction,
    save_alignment,
    save_view,
)
from pipelines.workspace import Stage
from recon.align import AlignParams, align_view, borrow_alignments, for_model_size
from recon.atomic import write_json
from recon.colmap_model import SparseScene
from recon.errors import AlignmentError
from recon.progress import progress
from recon.records import Alignment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignedViews:
    """What the align stage wrote: every view's alignment, and the usable views' files."""

    alignments: dict[str, Alignment]  # view name -> alignment (also failed ones)
    views: ViewFiles  # aligned view files (pipelines.view_files), usable views only


def align_predictions(
    scene: SparseScene, predictions: ViewFiles, stage: Stage, params: AlignParams
) -> AlignedViews:
    """Fit every view (resuming per view), apply the fallback, write metric depth maps."""
    if stage.done:
        return AlignedViews(load_alignments(stage), aligned_views(stage.path, scene.names))
    pred_dir = predictions.stage_dir
    out = stage.begin()
    sized = for_model_size(params, len(scene.names))
    if sized.min_track_length != params.min_track_length:
        log.warning(
            "only %d views registered: sparse points with tracks of %d views are used "
            "(align.min_track_length is %d)",
            len(scene.names),
            sized.min_track_length,
            params.min_track_length,
        )
        params = sized
    alignments: dict[str, Alignment] = {}
    for name in progress(scene.names, desc="align", unit="view", leave=False):
        done = load_alignment(out, name)
        if done is not None:
            alignments[name] = done
            continue
        pred = load_prediction(pred_dir, name)
        alignment = align_view(pred, scene.sparse[name], params, scene.cameras[name])
        if alignment.usable:
            save_view(out, name, pred, alignment)
        save_alignment(out, name, alignment)
        alignments[name] = alignment
    if params.fallback == "borrow":
        alignments = _borrow(scene, pred_dir, out, alignments, params)
    _report(alignments)
    usable = [n for n, a in alignments.items() if a.usable]
    write_json(out / "alignment.json", {n: a.summary() for n, a in sorted(alignments.items())})
    if not usable:
        reason, fix = _why_none_aligned(scene, alignments, params)
        raise AlignmentError(
            f"no view could be aligned to the sparse points: {reason}",
            path=out / "alignment.json",
            fix=fix,
        )
    stage.finish({"num_views": len(alignments), "num_usable": len(usable)})
    return AlignedViews(alignments, aligned_views(out, scene.names))


def _why_none_aligned(
    scene: SparseScene, alignments: dict[str, Alignment], params: AlignParams
) -> tuple[str, str]:
    """Blame what failed: too few SfM points, or predictions that do not fit the points."""
    observed = int(np.median([len(scene.sparse[n].z) for n in alignments]))
    messages = Counter(a.message.split(" (")[0] for a in alignments.values())
    common = messages.most_common(1)[0][0]
    if observed < params.min_points:
        return (
            f"views observe a median of {observed} 3D points ({common})",
            "check the SfM report; views need >= align.min_points observed 3D points",
        )
    if any("scale" in m for m in messages):
        return (
            f"predictions are anti-correlated with the SfM depth ({common})",
            "check the predictions' space (depth or disparity) and sign: a negative scale "
            "means depth given as disparity, negated values, or the wrong model",
        )
    return (
        f"views observe a median of {observed} 3D points, but the predictions fit none ({common})",
        "check the predictions: NaN, zero or constant maps give no usable values, and "
        "depth labelled as disparity (or the reverse) does not fit",
    )


def _borrow(
    scene: SparseScene,
    pred_dir: Path,
    out: Path,
    alignments: dict[str, Alignment],
    params: AlignParams,
) -> dict[str, Alignment]:
    borrowed = borrow_alignments(alignments, scene.centers(), params.borrow_neighbors)
    for name, alignment in borrowed.items():
        if alignment.status == "borrowed" and alignments[name].status != "borrowed":
            save_view(out, name, load_prediction(pred_dir, name), alignment)
            save_alignment(out, name, alignment)
    return borrowed


def _report(alignments: dict[str, Alignment]) -> None:
    for name, a in sorted(alignments.items()):
        if a.status == "ok":
            log.debug(
                "%s: scale %.4g shift %.4g, %d/%d inliers, residual %.3f",
                name,
                a.scale,
                a.shift,
                a.num_inliers,
                a.num_points,
                a.residual,
            )
        else:
            log.warning("%s: alignment %s (%s)", name, a.status, a.message)
    ok = [a.residual for a in alignments.values() if a.status == "ok"]
    log.info(
        "alignment: %d/%d views usable, median residual %.3f",
        sum(a.usable for a in alignments.values()),
        len(alignments),
        float(np.median(ok)) if ok else float("nan"),
    )


def load_alignments(stage: Stage) -> dict[str, Alignment]:
    data = json.loads((stage.path / "alignment.json").read_text())
    return {
        name: alignment_from_json(d, correction_path(stage.path, name)) for name, d in data.items()
    }
