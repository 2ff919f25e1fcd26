"""Self-check of predicted normals against normals computed from (aligned) depth.

A prediction whose normals use the wrong sign convention (e.g. Lotus/DSINE normals not negated
into the OpenCV camera frame) disagrees with its own depth by ~180 deg; correct normals agree
to within the model's error (~10-20 deg). numpy only, so the pipeline runs it on any source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.normal_integration import central_difference_normals
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
) -> NormalAgreement:
    """Compare (H, W, 3) OpenCV normals with normals of (H, W) z-depth (any scale, no shift).

    K: (3, 3) pixels. Depth must be metric up to a global scale (e.g. a prediction after
    alignment): a shift bends surfaces. Depth normals are strict central differences
    (`central_difference_normals`: 0 at borders and next to invalid depth). `mask` (H, W) bool
    restricts the comparison. Raises ValueError when no pixel can be compared.
    """
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
