"""The per-view files that stages exchange: one place for their names, keys, shapes, units and
frames. Stages write and read them only through this module.

Prediction file, `<predict stage>/<photo stem>.npz` (also the `--predictions DIR` input format,
read with checks by `pipelines.predictors.FilePredictor`):

    values              (H, W) float32  prediction units, affine in z ("depth") or 1 / z
                                        ("disparity"); NaN = no value
    space               0-d str         "depth" | "disparity"
    producer            0-d str         e.g. "lotus:<checkpoint>", "file:<folder>"
    normal_convention   0-d str         "opencv" (x right, y down, z forward)
    normal              (H, W, 3) float32, optional: unit, OpenCV camera frame
    confidence          (H, W) float32, optional: in [0, 1]

Aligned view file, `<align stage>/<photo stem>.npz`, written only for usable alignments:

    depth               (H, W) float32  z-depth in SfM world units; 0 = unknown
    normal              (H, W, 3) float32, optional: unit, OpenCV camera frame
    confidence          (H, W) float32, optional: in [0, 1]

Alignment file, `<align stage>/<photo stem>.json`: `recon.records.Alignment.summary()` (scale,
shift in the prediction's space, see `Alignment`).

All at the frame's resolution (the images stage's photo). Files are written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.atomic import write_json, write_npz
from recon.errors import InputError
from recon.images import source_stem
from recon.records import Alignment, MonoPrediction


@dataclass(frozen=True)
class ViewFiles:
    """What a per-view stage wrote: one file per view, in scene order."""

    stage_dir: Path
    paths: dict[str, Path]  # view name (relative photo path) -> its npz file

    @property
    def names(self) -> list[str]:
        return list(self.paths)


def prediction_path(root: Path, frame_name: str) -> Path:
    """`root/<photo name without extension>.npz`, also for photos the intake re-encoded."""
    return Path(root) / (source_stem(frame_name) + ".npz")


# --- predictions ------------------------------------------------------------------------------


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


def has_finite_values(stage_dir: Path, name: str) -> bool:
    with np.load(prediction_path(stage_dir, name), allow_pickle=False) as data:
        return bool(np.isfinite(data["values"]).any())


# --- aligned views ----------------------------------------------------------------------------


def view_path(stage_dir: Path, name: str) -> Path:
    return prediction_path(stage_dir, name)


def alignment_path(stage_dir: Path, name: str) -> Path:
    return prediction_path(stage_dir, name).with_suffix(".json")


def save_view(out: Path, name: str, pred: MonoPrediction, alignment: Alignment) -> None:
    """The aligned view file of `pred` mapped to depth by `alignment`."""
    depth = alignment.to_depth(pred.values)
    arrays = {"depth": np.nan_to_num(depth, nan=0.0).astype(np.float32)}
    if pred.normal is not None:
        arrays["normal"] = pred.normal.astype(np.float32)
    if pred.confidence is not None:
        arrays["confidence"] = pred.confidence.astype(np.float32)
    write_npz(view_path(out, name), **arrays)


def load_view_arrays(stage_dir: Path, name: str) -> dict[str, np.ndarray]:
    """depth (H, W) world units (0 = unknown), normal (H, W, 3) OpenCV, confidence (H, W)."""
    with np.load(view_path(stage_dir, name), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_view_depth(stage_dir: Path, name: str) -> np.ndarray:
    """(H, W) float32 depth alone (the other arrays of the file are not read)."""
    with np.load(view_path(stage_dir, name), allow_pickle=False) as data:
        return data["depth"]


def load_view_extras(stage_dir: Path, name: str) -> dict[str, np.ndarray]:
    """The aligned view's arrays except depth: normal and confidence when present."""
    with np.load(view_path(stage_dir, name), allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "depth"}


def aligned_views(stage_dir: Path, names: list[str]) -> ViewFiles:
    """The aligned view files that exist, in the order of `names`."""
    paths = {n: view_path(stage_dir, n) for n in names}
    return ViewFiles(stage_dir, {n: p for n, p in paths.items() if p.is_file()})


# --- alignments -------------------------------------------------------------------------------

ALIGNMENT_FIELDS = (
    "scale",
    "shift",
    "space",
    "num_points",
    "num_inliers",
    "residual",
    "status",
    "message",
)


def correction_path(stage_dir: Path, name: str) -> Path:
    return prediction_path(stage_dir, name).with_suffix(".correction.npz")


def save_alignment(stage_dir: Path, name: str, alignment: Alignment) -> None:
    """`<stem>.json` (the summary) and, for a corrected view, `<stem>.correction.npz` with the
    correction fields (H, W) float32, so that a resumed run reports the same alignment."""
    if alignment.scale_field is not None and alignment.shift_field is not None:
        write_npz(
            correction_path(stage_dir, name),
            scale_field=alignment.scale_field,
            shift_field=alignment.shift_field,
        )
    write_json(alignment_path(stage_dir, name), alignment.summary())


def load_alignment(stage_dir: Path, name: str) -> Alignment | None:
    """The view's alignment, or None when the view has not been aligned yet."""
    path = alignment_path(stage_dir, name)
    if not path.is_file():
        return None
    return alignment_from_json(json.loads(path.read_text()), correction_path(stage_dir, name))


def alignment_from_json(data: dict, correction: Path | None = None) -> Alignment:
    """An Alignment from its summary (null = unknown: NaN) and its correction file, if any."""
    fields = {k: float("nan") if data[k] is None else data[k] for k in ALIGNMENT_FIELDS}
    fields["message"] = data.get("message") or ""
    if data.get("smooth_correction") and correction is not None and correction.is_file():
        with np.load(correction, allow_pickle=False) as arrays:
            fields["scale_field"] = arrays["scale_field"]
            fields["shift_field"] = arrays["shift_field"]
    return Alignment(**fields)
