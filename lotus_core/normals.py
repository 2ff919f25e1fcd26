"""Normal conventions, and a self-check of predicted normals against normals from depth.

Lotus normals (DSINE convention; upstream trains on Hypersim camera-space normals with the x
axis flipped, `utils/hypersim_dataset.py`): x left, y up, z toward the camera, so a wall facing
the camera is (0, 0, +1). OpenCV camera frame (this package's convention): x right, y down,
z forward, and the same wall's outward normal is (0, 0, -1). The two differ by negation.

numpy only: the self-check runs on aligned depth from any source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def lotus_to_opencv(normal: np.ndarray) -> np.ndarray:
    """(..., 3) Lotus/DSINE normals -> (..., 3) OpenCV camera-frame normals (negation)."""
    return -np.asarray(normal)


def opencv_to_lotus(normal: np.ndarray) -> np.ndarray:
    """(..., 3) OpenCV camera-frame normals -> (..., 3) Lotus/DSINE normals (negation)."""
    return -np.asarray(normal)


def unit(vectors: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Unit-normalise along the last axis; near-zero vectors become zero. float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norm > eps, vectors / np.maximum(norm, eps), 0.0).astype(np.float32)


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera-frame points from (H, W) z-depth and 3x3 intrinsics (pixels).

    Pixel (row i, column j) has its centre at (j + 0.5, i + 0.5) (COLMAP convention).
    """
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    K = np.asarray(K, dtype=np.float64)
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x * depth, y * depth, depth], axis=-1)


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit OpenCV normals from (H, W) z-depth by central differences.

    Oriented toward the camera (n . p < 0). Pixels whose neighbourhood has a non-finite or
    non-positive depth get a zero vector.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    points = backproject(np.where(valid, depth, 0.0), K)
    du = np.zeros_like(points)
    dv = np.zeros_like(points)
    du[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dv[1:-1, :] = points[2:, :] - points[:-2, :]
    normal = np.cross(du, dv)
    flip = np.sum(normal * points, axis=-1) > 0
    normal[flip] *= -1
    ok = valid.copy()
    ok[:, 1:-1] &= valid[:, 2:] & valid[:, :-2]
    ok[1:-1, :] &= valid[2:, :] & valid[:-2, :]
    ok[[0, -1], :] = False
    ok[:, [0, -1]] = False
    return np.where(ok[..., None], unit(normal), 0.0).astype(np.float32)


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

    Depth must be metric up to a global scale (e.g. a prediction after alignment): a shift
    bends surfaces. `mask` (H, W) bool restricts the comparison. Raises ValueError when no
    pixel can be compared.
    """
    reference = normals_from_depth(depth, K)
    predicted = unit(normal_opencv)
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
