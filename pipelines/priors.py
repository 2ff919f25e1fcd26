"""Export aligned depth / normal priors for downstream tools: `lotus-recon priors ... --format F`.

`export_priors` writes each requested format into its own folder, OUT/<format>/ (the folder
to point that tool at; layouts in recon/priors/README.md), plus colourised previews for
people in OUT/previews/ and a summary in OUT/priors.json. The scene command can call it with
the same aligned views.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.atomic import write_json
from recon.preview import write_previews
from recon.priors import (
    PriorsWritten,
    PriorView,
    SparsePoints,
    StreamedViews,
    prepare_views,
    resolve_format,
    write_prior_views,
)
from recon.progress import progress
from recon.records import Frame, View

log = logging.getLogger(__name__)


@dataclass
class PriorsExport:
    """Result of `export_priors`."""

    out_dir: Path
    formats: dict[str, PriorsWritten] = field(default_factory=dict)
    previews: list[Path] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "formats": {k: v.summary() for k, v in self.formats.items()},
            "previews": len(self.previews),
        }


def export_priors(
    frames: Sequence[Frame],
    depths: Sequence[np.ndarray],
    out_dir: str | Path,
    formats: Sequence[str],
    normals: Sequence[np.ndarray | None] | None = None,
    confidences: Sequence[np.ndarray | None] | None = None,
    points3d: SparsePoints | None = None,
    previews: bool = True,
) -> PriorsExport:
    """Write `formats` (names or aliases) for the registered `frames`.

    depths: per frame (H, W) metric z-depth in SfM world units (aligned), 0/NaN unknown;
    normals: per frame (H, W, 3) unit, OpenCV camera frame, or None; confidences: (H, W) in
    [0, 1] or None; points3d: SfM points (colmap / dn-splatter / nerfstudio point cloud).
    """
    views = prepare_views(frames, depths, normals, confidences)
    return export_prepared(views, out_dir, formats, points3d, previews)


def export_prepared(
    views: Sequence[PriorView],
    out_dir: str | Path,
    formats: Sequence[str],
    points3d: SparsePoints | None = None,
    previews: bool = True,
    timestamps: Mapping[str, float] | None = None,
) -> PriorsExport:
    """`export_priors` for prepared views, in memory or streamed (`StreamedViews`).
    `timestamps`: seconds by frame name (clips), for the layouts that carry time (tum,
    splat-slam); None = frames 1 s apart."""
    out_dir = Path(out_dir)
    keys = resolve_formats(formats)  # validate all first
    result = PriorsExport(out_dir)
    for key in keys:
        written = write_prior_views(key, out_dir / key, views, points3d, timestamps=timestamps)
        result.formats[key] = written
        log.info("priors %s: %d views -> %s", key, written.views, written.root)
        for line in written.warnings:
            log.warning(line)
    if previews:
        result.previews = _write_previews(out_dir / "previews", views)
    write_json(out_dir / "priors.json", result.summary())
    return result


def export_views(
    views: Sequence[View],
    out_dir: str | Path,
    formats: Sequence[str],
    points3d: SparsePoints | None = None,
    previews: bool = True,
) -> PriorsExport:
    """`export_priors` for fusion-ready `View`s (their weights serve as confidence,
    rescaled to [0, 1] by each view's maximum)."""
    confidences = []
    for v in views:
        top = float(np.nanmax(v.weight)) if np.isfinite(v.weight).any() else 0.0
        confidences.append(v.weight / top if top > 0 else None)
    return export_priors(
        [v.frame for v in views],
        [v.depth for v in views],
        out_dir,
        formats,
        normals=[v.normal for v in views],
        confidences=confidences,
        points3d=points3d,
        previews=previews,
    )


def _write_previews(folder: Path, views: Sequence[PriorView]) -> list[Path]:
    written: list[Path] = []
    for v in progress(views, total=len(views), desc="previews", unit="view", leave=False):
        written += write_previews(folder, v.stem, v.depth, v.normal, v.confidence)
    return written


def resolve_formats(formats: Sequence[str]) -> list[str]:
    """Canonical format names; a typo raises ConfigError with a suggestion before any work."""
    return list(dict.fromkeys(resolve_format(f) for f in formats))


def export_aligned_priors(aligned, out_dir: Path, formats: Sequence[str]) -> PriorsExport:
    """Priors for every usable view of an `AlignedScene` (pipelines.scene), streamed: each
    view's image and arrays are read from the workspace when a writer reaches it."""
    from pipelines.view_files import load_view_arrays

    scene = aligned.scene
    names = aligned.views.names

    def load(i: int) -> tuple:
        arrays = load_view_arrays(aligned.views.stage_dir, names[i])
        frame = scene.frame(names[i])
        return frame, arrays["depth"], arrays.get("normal"), arrays.get("confidence")

    points = SparsePoints(
        xyz=scene.points_xyz, rgb=scene.points_rgb, error=scene.points_error, ids=scene.points_ids
    )
    return export_prepared(
        StreamedViews(names, load), out_dir, formats, points, timestamps=aligned.timestamps
    )
