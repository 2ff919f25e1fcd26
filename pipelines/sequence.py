"""What the scene pipeline does differently for a clip (video file or frame folder).

Kept apart from pipelines/scene.py so that the pipeline itself reads as the same list of stage
calls for photos and clips: intake, SfM settings for sequences, and the temporal-consistency
report.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from pipelines.config import to_dict
from pipelines.scene_config import SceneConfig
from pipelines.stage_images import prepare_images
from pipelines.stage_video import is_sequence_input, load_video_summary, prepare_sequence
from pipelines.view_files import load_prediction, load_view_arrays, view_path
from pipelines.workspace import Stage, folder_fingerprint
from recon.colmap_model import SparseScene
from recon.errors import InputError
from recon.records import Alignment
from recon.sfm import SfMParams
from recon.temporal import PosedCamera, sequence_disagreement
from recon.video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)


def intake_fingerprint(source: Path, config: SceneConfig, out_dir: Path | None = None) -> dict:
    """The images stage's configuration: unchanged for photo folders (their workspaces
    resume), the file's size and time plus the frame-selection settings for clips.
    `out_dir`: the run's output folder, left out of a photo folder's fingerprint."""
    if not is_sequence_input(source, config.video):
        return {"photos": folder_fingerprint(source, out_dir), "config": to_dict(config.images)}
    stat = Path(source).stat()
    files = (
        folder_fingerprint(source)
        if Path(source).is_dir()
        else [Path(source).name, stat.st_size, int(stat.st_mtime)]
    )
    return {"frames": files, "config": to_dict(config.images), "video": to_dict(config.video)}


def check_video_exists(source: Path) -> None:
    """Fail at once (before models are resolved) on a video file that is not there."""
    if Path(source).suffix.lower() in VIDEO_EXTENSIONS and not Path(source).is_file():
        raise InputError("video file not found", path=source, fix="check the path")


def intake(source: Path, stage: Stage, config: SceneConfig, out_dir: Path | None = None):
    """(ImageSet, timestamps by name in seconds, or None for photos) for any input.
    `out_dir`: the run's output folder, never read as photos when inside a photo folder."""
    check_video_exists(source)
    if is_sequence_input(source, config.video):
        return prepare_sequence(source, stage, config.images, config.video)
    return prepare_images(source, stage, config.images, out_dir), None


def sfm_params(source: Path, config: SceneConfig) -> SfMParams:
    """Sequential matching with overlap for clips (their frames are in time order), unless the
    user chose a matcher. COLMAP's loop detection needs a vocabulary-tree file (downloaded by
    default), so it is not switched on: `sfm.matcher=exhaustive` matches every pair instead."""
    params = config.sfm
    if is_sequence_input(source, config.video) and params.matcher == "auto":
        params = dataclasses.replace(params, matcher="sequential")
    return params


def sequence_report(
    images_stage: Stage,
    scene: SparseScene,
    pred_dir: Path,
    align_dir: Path,
    alignments: dict[str, Alignment],
) -> dict:
    """Frame selection summary, registration, and temporal consistency of the depth."""
    summary = load_video_summary(images_stage)
    kept = list(summary["timestamps"])
    unregistered = [n for n in kept if n not in scene.cam_from_world]
    if unregistered:
        log.warning("frames not registered by SfM: %s", ", ".join(unregistered))
    return {
        "selection": summary["selection"],
        "timestamps": summary["timestamps"],
        "registered": len(kept) - len(unregistered),
        "unregistered": unregistered,
        "temporal_consistency": temporal_consistency(scene, pred_dir, align_dir, alignments),
    }


def temporal_consistency(
    scene: SparseScene, pred_dir: Path, align_dir: Path, alignments: dict[str, Alignment]
) -> dict:
    """Median relative depth disagreement of consecutive frames (frame i reprojected into
    i+1), before alignment (every frame mapped with one clip-wide scale and shift: the
    medians of the per-frame fits, so the prediction's own flicker shows) and after it (each
    frame's own alignment, as fused and exported)."""
    names = [n for n in scene.names if alignments.get(n) and alignments[n].usable]
    names = [n for n in names if view_path(align_dir, n).is_file()]
    if len(names) < 2:
        return {"before": None, "after": None, "pairs": 0}
    posed = [PosedCamera(n, scene.cameras[n].K, scene.cam_from_world[n]) for n in names]
    used = [alignments[n] for n in names]
    clip_wide = dataclasses.replace(
        used[0],
        scale=float(np.median([a.scale for a in used])),
        shift=float(np.median([a.shift for a in used])),
        scale_field=None,
        shift_field=None,
    )

    def before(i: int) -> np.ndarray:
        return clip_wide.to_depth(load_prediction(pred_dir, names[i]).values)

    def after(i: int) -> np.ndarray:
        return load_view_arrays(align_dir, names[i])["depth"]

    result_before = sequence_disagreement(posed, before)
    result_after = sequence_disagreement(posed, after)
    out = {
        "before": result_before["median"],
        "after": result_after["median"],
        "pairs": len(names) - 1,
        "per_pair": [
            [a, b, x, y]
            for (a, b, x), (_, _, y) in zip(result_before["pairs"], result_after["pairs"])
        ],
    }
    log.info(
        "temporal consistency (median relative depth disagreement of consecutive frames): "
        "%s before alignment, %s after",
        _fmt(out["before"]),
        _fmt(out["after"]),
    )
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
