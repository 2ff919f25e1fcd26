"""Normal conventions of Lotus predictions and of this package.

Lotus normals (DSINE convention; upstream trains on Hypersim camera-space normals with the x
axis flipped, `utils/hypersim_dataset.py`): x left, y up, z toward the camera, so a wall facing
the camera is (0, 0, +1). OpenCV camera frame (this package's convention): x right, y down,
z forward, and the same wall's outward normal is (0, 0, -1). The two differ by negation.

The self-check of predicted normals against normals from aligned depth is
`recon.normal_check` (numpy, so it runs on aligned depth from any source).
"""

from __future__ import annotations

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
