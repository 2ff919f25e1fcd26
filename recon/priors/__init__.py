"""Depth / normal priors in the layouts downstream tools read.

    write_priors(format, out_dir, frames, depths, normals, confidences, points3d)

Inputs follow DESIGN.md: per frame a metric z-depth (H, W) in SfM world units (0/NaN =
unknown), unit normals (H, W, 3) in the OpenCV camera frame facing the camera (or None), a
confidence (H, W) in [0, 1] (or None); frames carry `cam_from_world` and a pinhole camera
(COLMAP pixel centres). Each format module converts at the edge and documents its layout,
axes and units, and the consumer code it was checked against (see README.md here).

Formats: nerfstudio, dn-splatter, monosdf, tum (alias monogs), splat-slam, colmap, npz.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from recon.errors import ConfigError
from recon.priors import colmap, dn_splatter, monosdf, nerfstudio, npz, splat_slam, tum
from recon.priors.common import (
    PriorsWritten,
    PriorView,
    SparsePoints,
    StreamedViews,
    prepare_views,
)
from recon.records import Frame

Writer = Callable[..., PriorsWritten]

WRITERS: dict[str, Writer] = {
    "nerfstudio": nerfstudio.write,
    "dn-splatter": dn_splatter.write,
    "monosdf": monosdf.write,
    "tum": tum.write,
    "splat-slam": splat_slam.write,
    "colmap": colmap.write,
    "npz": npz.write,
}
ALIASES = {"monogs": "tum", "dn_splatter": "dn-splatter", "splat_slam": "splat-slam"}
FORMATS: tuple[str, ...] = tuple(WRITERS)
TIMED = ("tum", "splat-slam")  # layouts with per-frame timestamps


def resolve_format(name: str) -> str:
    """Canonical format name; ConfigError with the valid names when unknown."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in WRITERS:
        import difflib

        close = difflib.get_close_matches(key, list(WRITERS) + list(ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown priors format {name!r}{hint}",
            fix="use one of: " + ", ".join(FORMATS + tuple(ALIASES)),
        )
    return key


def write_priors(
    format: str,
    out_dir: str | Path,
    frames: Sequence[Frame],
    depths: Sequence[np.ndarray],
    normals: Sequence[np.ndarray | None] | None = None,
    confidences: Sequence[np.ndarray | None] | None = None,
    points3d: SparsePoints | None = None,
    with_images: bool = True,
) -> PriorsWritten:
    """Write one format into `out_dir` (created). Returns what was written and notes.

    frames: registered frames (pose and camera set); depths: (H, W) z-depth per frame, world
    units; normals: (H, W, 3) OpenCV camera frame per frame or None; confidences: (H, W) in
    [0, 1] or None; points3d: SfM points for the formats that carry them (colmap,
    dn-splatter, nerfstudio's sparse_pc.ply). Files are written atomically.
    """
    views = prepare_views(frames, depths, normals, confidences)
    return write_prior_views(format, out_dir, views, points3d, with_images)


def write_prior_views(
    format: str,
    out_dir: str | Path,
    views: Sequence[PriorView],
    points3d: SparsePoints | None = None,
    with_images: bool = True,
    timestamps: Mapping[str, float] | None = None,
) -> PriorsWritten:
    """`write_priors` for views already prepared (`prepare_views`), or streamed from disk one
    at a time (`StreamedViews`) to keep memory flat for long sequences. `timestamps`
    (seconds by frame name, e.g. a video's) are written by the layouts that carry time."""
    key = resolve_format(format)
    writer = WRITERS[key]
    if key == "npz":
        return writer(views, Path(out_dir), points3d)
    if key in TIMED and timestamps is not None:
        return writer(
            views, Path(out_dir), points3d, with_images=with_images, timestamps=timestamps
        )
    return writer(views, Path(out_dir), points3d, with_images=with_images)


__all__ = [
    "FORMATS",
    "PriorView",
    "PriorsWritten",
    "SparsePoints",
    "StreamedViews",
    "prepare_views",
    "resolve_format",
    "write_prior_views",
    "write_priors",
]
