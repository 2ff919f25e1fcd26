"""Stage 4: align each view's prediction to its sparse points -> metric depth per view on disk.

Per view: `<stem>.json` (the Alignment diagnostics) and, when usable, `<stem>.npz` with the
metric z-depth and the normals. `alignment.json` holds the table for all views.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from pipelines.predictors import prediction_path
from pipelines.stage_predict import load_prediction
from pipelines.workspace import Stage
from recon.align import AlignParams, align_view, borrow_alignments, for_model_size
from recon.atomic import write_json, write_npz
from recon.colmap_model import SparseScene
from recon.errors import AlignmentError
from recon.progress import progress
from recon.records import Alignment

log = logging.getLogger(__name__)


def align_predictions(
    scene: SparseScene, pred_dir: Path, stage: Stage, params: AlignParams
) -> dict[str, Alignment]:
    """Fit every view (resuming per view), apply the fallback, write metric depth maps."""
    if stage.done:
        return load_alignments(stage)
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
        diag_path = _diag_path(out, name)
        if diag_path.is_file():
            saved = json.loads(diag_path.read_text())
            alignments[name] = _alignment_from_json(saved, _correction_path(out, name))
            continue
        pred = load_prediction(pred_dir, name)
        alignment = align_view(pred, scene.sparse[name], params, scene.cameras[name])
        if alignment.usable:
            _write_view(out, name, pred, alignment)
            _write_correction(out, name, alignment)
        write_json(diag_path, alignment.summary())
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
    return alignments


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
            _write_view(out, name, load_prediction(pred_dir, name), alignment)
            write_json(_diag_path(out, name), alignment.summary())
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


def _diag_path(out: Path, name: str) -> Path:
    return prediction_path(out, name).with_suffix(".json")


def view_path(stage_dir: Path, name: str) -> Path:
    return prediction_path(stage_dir, name)


def _write_view(out: Path, name: str, pred, alignment: Alignment) -> None:
    depth = alignment.to_depth(pred.values)
    arrays = {"depth": np.nan_to_num(depth, nan=0.0).astype(np.float32)}
    if pred.normal is not None:
        arrays["normal"] = pred.normal.astype(np.float32)
    if pred.confidence is not None:
        arrays["confidence"] = pred.confidence.astype(np.float32)
    write_npz(view_path(out, name), **arrays)


def _correction_path(out: Path, name: str) -> Path:
    return prediction_path(out, name).with_suffix(".correction.npz")


def _write_correction(out: Path, name: str, alignment: Alignment) -> None:
    """The smooth correction fields, so that a resumed run reports the same alignment."""
    if alignment.scale_field is not None and alignment.shift_field is not None:
        write_npz(
            _correction_path(out, name),
            scale_field=alignment.scale_field,
            shift_field=alignment.shift_field,
        )


def _alignment_from_json(data: dict, correction: Path | None = None) -> Alignment:
    """An Alignment from its summary (null = unknown, NaN) and its correction file, if any."""
    keys = ("scale", "shift", "space", "num_points", "num_inliers", "residual", "status")
    fields = {k: float("nan") if data[k] is None else data[k] for k in keys}
    fields["message"] = data.get("message", "")
    if data.get("smooth_correction") and correction is not None and correction.is_file():
        with np.load(correction, allow_pickle=False) as arrays:
            fields["scale_field"] = arrays["scale_field"]
            fields["shift_field"] = arrays["shift_field"]
    return Alignment(**fields)


def load_alignments(stage: Stage) -> dict[str, Alignment]:
    data = json.loads((stage.path / "alignment.json").read_text())
    return {
        name: _alignment_from_json(d, _correction_path(stage.path, name))
        for name, d in data.items()
    }


def load_view_arrays(stage_dir: Path, name: str) -> dict[str, np.ndarray]:
    """depth (H, W) metres (0 = unknown), normal (H, W, 3) OpenCV, confidence (H, W)."""
    with np.load(view_path(stage_dir, name), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
