"""Temporal consistency of per-frame depth along a sequence.

Per-frame monocular predictions flicker: each frame's affine-invariant depth has its own scale
and shift. The measure here reprojects frame i's depth into frame i+1 with the SfM poses and
compares it with frame i+1's own depth, pixel by pixel where both see the surface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recon.geometry import backproject, project, transform_points

STRIDE = 4  # px; every STRIDE-th pixel of frame i is reprojected (the median is stable)
OCCLUSION_GAP = 0.5  # relative; larger disagreements are counted as occlusions, not error


@dataclass(frozen=True)
class PosedCamera:
    name: str
    K: np.ndarray  # (3, 3) px, COLMAP pixel centres
    cam_from_world: np.ndarray  # (4, 4) world -> OpenCV camera


def pair_disagreement(
    frame_a: PosedCamera, depth_a: np.ndarray, frame_b: PosedCamera, depth_b: np.ndarray
) -> float | None:
    """Median of |z_a->b - d_b| / d_b over pixels of A that land on valid pixels of B.

    depth_a, depth_b: (H, W) z-depth in SfM world units, 0/NaN unknown, at the frames'
    camera sizes. z_a->b is the depth in B's camera of A's back-projected pixels; d_b is B's
    depth at the (nearest) pixel they project to. Gaps above OCCLUSION_GAP (a surface in front
    hides the other) are left out. None when fewer than 100 pixels overlap.
    """
    K_a, K_b = frame_a.K, frame_b.K
    sub = np.zeros_like(depth_a, dtype=np.float64)
    sub[::STRIDE, ::STRIDE] = np.nan_to_num(depth_a[::STRIDE, ::STRIDE])
    points_a = backproject(sub, K_a).reshape(-1, 3)
    points_a = points_a[sub.reshape(-1) > 0]
    world = transform_points(np.linalg.inv(frame_a.cam_from_world), points_a)
    cam_b = transform_points(frame_b.cam_from_world, world)
    uv, z = project(cam_b, K_b)  # COLMAP pixel centres: pixel index = floor(uv)
    u, v = uv[:, 0], uv[:, 1]
    h, w = depth_b.shape
    with np.errstate(invalid="ignore"):
        inside = (u >= 0) & (v >= 0) & (u < w) & (v < h)  # NaN (behind B) is outside
    d_b = np.nan_to_num(depth_b)[v[inside].astype(int), u[inside].astype(int)]
    z_in = z[inside]
    valid = d_b > 0
    rel = np.abs(z_in[valid] - d_b[valid]) / d_b[valid]
    rel = rel[rel < OCCLUSION_GAP]
    return float(np.median(rel)) if rel.size >= 100 else None


def sequence_disagreement(
    frames: Sequence[PosedCamera], depth_of: Callable[[int], np.ndarray]
) -> dict:
    """Disagreement of consecutive frames (time order); `depth_of(i)` gives frame i's depth.

    Returns {"median": float | None, "pairs": [[name_i, name_i+1, value | None], ...]}.
    """
    pairs = []
    prev = depth_of(0) if frames else None
    for i in range(len(frames) - 1):
        nxt = depth_of(i + 1)
        value = pair_disagreement(frames[i], prev, frames[i + 1], nxt)
        pairs.append([frames[i].name, frames[i + 1].name, value])
        prev = nxt
    values = [p[2] for p in pairs if p[2] is not None]
    return {"median": float(np.median(values)) if values else None, "pairs": pairs}
