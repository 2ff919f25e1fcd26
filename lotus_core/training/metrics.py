"""Held-out metrics for affine-invariant depth and for normals (numpy only).

Depth: a least-squares scale and shift fitted per image in the space the model predicts
(depth: z ~ s v + t; disparity: 1/z ~ s v + t) over pixels with known depth, then
AbsRel = mean |z_fit - z| / z and delta1 = share of pixels with max(z_fit / z, z / z_fit) < 1.25.
A fitted disparity <= 0 counts as a miss (relative error 1, outside delta1).
Normals: angle between predicted and true unit normals (same frame), in degrees.
"""

from __future__ import annotations

import numpy as np


def aligned_depth(
    values: np.ndarray, depth: np.ndarray, space: str
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) prediction and true z-depth -> (z_fit (K,), z (K,)) on the K known pixels."""
    depth = np.asarray(depth, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(depth) & (depth > 0) & np.isfinite(v)
    target = depth[ok] if space == "depth" else 1.0 / depth[ok]
    design = np.column_stack([v[ok], np.ones(ok.sum())])
    (scale, shift), *_ = np.linalg.lstsq(design, target, rcond=None)
    fitted = scale * v[ok] + shift
    if space == "disparity":
        fitted = np.where(fitted > 0, 1.0 / np.maximum(fitted, 1e-12), np.nan)
    return fitted, depth[ok]


def depth_errors(values: np.ndarray, depth: np.ndarray, space: str) -> dict[str, float]:
    """AbsRel and delta1 of one image after alignment (module docstring)."""
    fitted, z = aligned_depth(values, depth, space)
    miss = ~np.isfinite(fitted)
    rel = np.where(miss, 1.0, np.abs(fitted - z) / z)
    ratio = np.where(miss, np.inf, np.maximum(fitted / z, z / np.where(miss, 1.0, fitted)))
    return {"abs_rel": float(rel.mean()), "delta1": float((ratio < 1.25).mean())}


def normal_angles(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(H, W, 3) predicted and true normals -> (K,) angles in degrees where the truth is known."""
    true = np.asarray(true, dtype=np.float64)
    ok = np.linalg.norm(true, axis=-1) > 0.5
    p = np.asarray(pred, dtype=np.float64)[ok]
    p /= np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    cos = np.clip(np.sum(p * true[ok], axis=-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def normal_summary(angles: np.ndarray) -> dict[str, float]:
    """Mean and median angle (degrees) and % of pixels under 11.25 deg, over pooled pixels."""
    angles = np.asarray(angles, dtype=np.float64)
    return {
        "mean_deg": float(angles.mean()),
        "median_deg": float(np.median(angles)),
        "pct_11_25": float(100.0 * (angles < 11.25).mean()),
    }
