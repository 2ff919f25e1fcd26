"""Export aligned depth / normal priors for downstream tools: `lotus-recon priors ... --format F`.

`export_priors` writes each requested format into its own folder, OUT/<format>/ (the folder
to point that tool at; layouts in recon/priors/README.md), plus colourised previews for
people in OUT/previews/ and a summary in OUT/priors.json. The scene command can call it with
the same aligned views.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.atomic import write_json
from recon.preview import write_previews
from recon.priors import PriorsWritten, SparsePoints, resolve_format, write_priors
from recon.priors.common import safe_stem
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
    out_dir = Path(out_dir)
    keys = list(dict.fromkeys(resolve_format(f) for f in formats))  # validate all first
    result = PriorsExport(out_dir)
    for key in keys:
        written = write_priors(key, out_dir / key, frames, depths, normals, confidences, points3d)
        result.formats[key] = written
        log.info("priors %s: %d views -> %s", key, written.views, written.root)
        for line in written.warnings:
            log.warning(line)
    if previews:
        result.previews = _write_previews(
            out_dir / "previews", frames, depths, normals, confidences
        )
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


def _write_previews(folder, frames, depths, normals, confidences) -> list[Path]:
    n = len(frames)
    normals = list(normals) if normals is not None else [None] * n
    confidences = list(confidences) if confidences is not None else [None] * n
    written: list[Path] = []
    items = zip(frames, depths, normals, confidences)
    for frame, depth, normal, conf in progress(
        items, total=n, desc="previews", unit="view", leave=False
    ):
        written += write_previews(folder, safe_stem(frame.name), depth, normal, conf)
    return written


def resolve_formats(formats: Sequence[str]) -> list[str]:
    """Canonical format names; a typo raises ConfigError with a suggestion before any work."""
    return list(dict.fromkeys(resolve_format(f) for f in formats))


def export_aligned_priors(aligned, out_dir: Path, formats: Sequence[str]) -> PriorsExport:
    """Priors for every usable view of an `AlignedScene` (pipelines.scene)."""
    from pipelines.stage_align import load_view_arrays, view_path

    scene = aligned.scene
    names = [n for n in scene.names if view_path(aligned.align_dir, n).is_file()]
    frames, depths, normals, confidences = [], [], [], []
    for name in progress(names, desc="priors", unit="view", leave=False):
        arrays = load_view_arrays(aligned.align_dir, name)
        frames.append(scene.frame(name))
        depths.append(arrays["depth"])
        normals.append(arrays.get("normal"))
        confidences.append(arrays.get("confidence"))
    points = SparsePoints(
        xyz=scene.points_xyz, rgb=scene.points_rgb, error=scene.points_error, ids=scene.points_ids
    )
    return export_priors(frames, depths, out_dir, formats, normals, confidences, points)
