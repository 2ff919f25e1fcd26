"""Shared camera geometry: pixel grids, (back)projection, sampling and normals from depth.

Conventions (DESIGN.md): OpenCV camera frame (x right, y down, z forward); COLMAP pixel centres,
so pixel (row i, col j) has its centre at (u, v) = (j + 0.5, i + 0.5); depth is z-depth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def pixel_centers(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pixel-centre coordinates, each (H, W) float64: u = j + 0.5, v = i + 0.5."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return u + 0.5, v + 0.5


def camera_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float64 rays K^-1 (u, v, 1) through pixel centres, scaled so that z = 1
    (camera frame), so a pixel's point is z-depth * ray.

    K (3, 3) pixels. The skew term K[0, 1] is honoured (the exact inverse of `project`); every
    K this package builds (COLMAP PINHOLE after undistortion, user fx, fy, cx, cy) has zero skew,
    where this is bit-identical to ignoring it.
    """
    u, v = pixel_centers(height, width)
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (H, W, 3) float64 from z-depth (H, W); invalid depth gives NaN."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    rays = camera_rays(K, *depth.shape)
    return np.where(valid[..., None], rays * np.where(valid, depth, np.nan)[..., None], np.nan)


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid/similarity transform to points (..., 3); float64 out."""
    p = np.asarray(points, dtype=np.float64)
    # Column-wise: numpy's matmul with an inner dimension of 3 is slow on large arrays.
    cols = [
        T[r, 0] * p[..., 0] + T[r, 1] * p[..., 1] + T[r, 2] * p[..., 2] + T[r, 3] for r in range(3)
    ]
    return np.stack(cols, axis=-1)


def camera_center(cam_from_world: np.ndarray) -> np.ndarray:
    """(3,) world position of the camera of a (4, 4) cam_from_world pose: -R^T t."""
    return -cam_from_world[:3, :3].T @ cam_from_world[:3, 3]


def vector_norm(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (..., 3) -> (...,), faster than np.linalg.norm here."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def project(points_cam: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project camera-frame points (..., 3) -> (uv (..., 2) pixels, z (...)); uv NaN if z <= 0.

    uv in COLMAP pixel centres; the skew K[0, 1] is honoured (see `camera_rays`)."""
    z = points_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(z > 0, z, np.nan)
        u = (K[0, 0] * points_cam[..., 0] + K[0, 1] * points_cam[..., 1]) / zs + K[0, 2]
        v = K[1, 1] * points_cam[..., 1] / zs + K[1, 2]
    return np.stack([u, v], axis=-1), z


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W) map at uv (N, 2) pixels, COLMAP pixel centres.

    The value at uv = (j + 0.5, i + 0.5) is image[i, j]. A sample is NaN when it falls outside
    the pixel-centre hull or draws on a NaN pixel (NaN never leaks in as a number).
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    x = uv[:, 0] - 0.5
    y = uv[:, 1] - 0.5
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    bad = ~np.isfinite(image)
    coords = np.stack([np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)])
    out = ndimage.map_coordinates(np.where(bad, 0.0, image), coords, order=1, mode="nearest")
    if bad.any():
        touched = ndimage.map_coordinates(bad.astype(np.float64), coords, order=1, mode="nearest")
        inside &= touched < 1e-9
    return np.where(inside, out, np.nan)


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) float32, camera frame, from z-depth (H, W) by central differences.

    Normals face the camera (n . ray < 0). Pixels whose neighbourhood has invalid depth get
    one-sided differences when possible, else zero vectors.
    """
    points = backproject(depth, K)
    du = _central_difference(points, axis=1)
    dv = _central_difference(points, axis=0)
    normal = np.cross(du, dv)
    norm = vector_norm(normal)[..., None]
    ok = np.isfinite(norm) & (norm > 0)
    normal = np.where(ok, normal / np.where(ok, norm, 1.0), 0.0)
    rays = camera_rays(K, *depth.shape)
    flip = np.sum(normal * rays, axis=-1, keepdims=True) > 0
    return np.where(flip, -normal, normal).astype(np.float32)


def _central_difference(points: np.ndarray, axis: int) -> np.ndarray:
    """Derivative of (H, W, 3) points along an image axis; falls back to one-sided differences."""
    fwd = np.full_like(points, np.nan)
    bwd = np.full_like(points, np.nan)
    n = points.shape[axis]
    lead = [slice(None)] * 3
    trail = [slice(None)] * 3
    lead[axis], trail[axis] = slice(1, n), slice(0, n - 1)
    diff = points[tuple(lead)] - points[tuple(trail)]
    fwd[tuple(trail)] = diff
    bwd[tuple(lead)] = diff
    # Prefer the smaller of the two one-sided differences: it does not straddle a depth edge.
    fwd_n = vector_norm(fwd)[..., None]
    bwd_n = vector_norm(bwd)[..., None]
    use_bwd = ~np.isfinite(fwd_n) | (np.isfinite(bwd_n) & (bwd_n < fwd_n))
    return np.where(use_bwd, bwd, fwd)


def viewing_cosine(normal: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) cosine between the normal and the direction towards the camera, in [-1, 1].

    1 = surface faces the camera head-on, 0 = grazing; zero-length normals give 0.
    """
    h, w = normal.shape[:2]
    rays = camera_rays(K, h, w)
    rays /= vector_norm(rays)[..., None]
    return -np.einsum("...i,...i->...", normal, rays)


def depth_edges(depth: np.ndarray, rel_jump: float = 0.05) -> np.ndarray:
    """(H, W) bool: pixels next to a relative depth jump larger than `rel_jump` (or invalid)."""
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    edge = ~np.isfinite(d)
    for axis in (0, 1):
        a = np.moveaxis(d, axis, 0)
        with np.errstate(invalid="ignore"):
            jump = np.abs(a[1:] - a[:-1]) / np.minimum(a[1:], a[:-1])
        jump = ~(jump <= rel_jump)
        e = np.moveaxis(edge, axis, 0)
        e[1:] |= jump
        e[:-1] |= jump
    return edge


def discontinuities(depth: np.ndarray, rel_jump: float, radius: int) -> np.ndarray:
    """(H, W) bool: pixels within `radius` pixels (square window) of a depth discontinuity,
    i.e. where max / min of the valid depth in the window exceeds 1 + rel_jump. Pixels next to
    invalid depth count too (the border of the known region is an edge)."""
    valid = np.isfinite(depth) & (depth > 0)
    size = 2 * int(radius) + 1
    hi = ndimage.maximum_filter(np.where(valid, depth, np.inf), size=size, mode="nearest")
    lo = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=size, mode="nearest")
    with np.errstate(invalid="ignore"):
        jump = ~(hi <= lo * (1.0 + rel_jump))  # inf (an invalid neighbour) counts as a jump
    return jump & valid
