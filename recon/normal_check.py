"""Self-check of predicted normals against normals computed from (aligned) depth.

A prediction whose normals use the wrong sign convention (e.g. Lotus/DSINE normals not negated
into the OpenCV camera frame) disagrees with its own depth by ~180 deg; correct normals agree
to within the model's error (~10-20 deg). numpy only, so the pipeline runs it on any source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.normal_integration import block_mean, central_difference_normals
from recon.records import Camera
from recon.resample import normalize


@dataclass(frozen=True)
class NormalAgreement:
    """Angles (degrees) between predicted normals and normals from depth."""

    median_deg: float  # as given
    median_negated_deg: float  # if the prediction had the opposite sign convention
    num_pixels: int  # pixels compared

    @property
    def convention_ok(self) -> bool:
        """False flags a sign-convention error (the negated prediction agrees better)."""
        return self.median_deg <= self.median_negated_deg


def normal_depth_agreement(
    normal_opencv: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    mask: np.ndarray | None = None,
    step: int = 1,
) -> NormalAgreement:
    """Compare (H, W, 3) OpenCV normals with normals of (H, W) z-depth (any scale, no shift).

    K: (3, 3) pixels. Depth must be metric up to a global scale (e.g. a prediction after
    alignment): a shift bends surfaces. Depth normals are strict central differences
    (`central_difference_normals`: 0 at borders and next to invalid depth). `mask` (H, W) bool
    restricts the comparison. step > 1 compares step x step block means instead of pixels:
    per-pixel depth noise of ~1 % is larger than a pixel's footprint, so normals of
    full-resolution depth are mostly noise. Raises ValueError when no pixel can be compared.
    """
    if step > 1:
        normal_opencv, depth, K, mask = _blocks(normal_opencv, depth, K, mask, step)
    h, w = np.shape(depth)
    camera = Camera(K=np.asarray(K, dtype=np.float64), width=w, height=h)
    reference = central_difference_normals(depth, camera)
    predicted = normalize(np.asarray(normal_opencv, dtype=np.float32))
    usable = (np.linalg.norm(reference, axis=-1) > 0) & (np.linalg.norm(predicted, axis=-1) > 0)
    if mask is not None:
        usable &= np.asarray(mask, dtype=bool)
    if not usable.any():
        raise ValueError("no pixel has both a predicted normal and a normal from depth")
    cos = np.clip(np.sum(predicted[usable] * reference[usable], axis=-1), -1.0, 1.0)
    return NormalAgreement(
        median_deg=float(np.degrees(np.median(np.arccos(cos)))),
        median_negated_deg=float(np.degrees(np.median(np.arccos(-cos)))),
        num_pixels=int(usable.sum()),
    )


def _blocks(normal, depth, K, mask, step: int):
    """Block means (unknown depth is NaN, so it does not bias a block), K for the block grid
    (a block's centre is at step * its COLMAP pixel centre), and blocks wholly inside mask."""
    depth = np.asarray(depth, dtype=np.float64)
    depth = block_mean(np.where(np.isfinite(depth) & (depth > 0), depth, np.nan), step)
    normal = np.nan_to_num(block_mean(np.asarray(normal, dtype=np.float64), step))
    K = np.diag([1.0 / step, 1.0 / step, 1.0]) @ np.asarray(K, dtype=np.float64)
    if mask is not None:
        mask = block_mean(np.asarray(mask, dtype=np.float64), step) == 1.0
    return normal, depth, K, mask


def convention_report(agreements: dict[str, NormalAgreement]) -> dict:
    """Scene-level result of the per-view checks, for report.json.

    convention_ok is False when, over the views' medians, the negated normals agree better
    with the aligned depth than the normals as given: a sign-convention error (~180 deg)
    rather than ordinary prediction error (~10-30 deg). flagged_views lists the views that
    fail on their own.
    """
    given = [a.median_deg for a in agreements.values()]
    negated = [a.median_negated_deg for a in agreements.values()]
    median, median_negated = float(np.median(given)), float(np.median(negated))
    return {
        "views_checked": len(agreements),
        "median_deg": median,
        "median_negated_deg": median_negated,
        "convention_ok": median <= median_negated,
        "flagged_views": sorted(n for n, a in agreements.items() if not a.convention_ok),
    }
