"""Depth agreement between neighbouring views, read from the aligned depth maps on disk.

For each view, its nearest camera (by centre distance) is its neighbour. A coarse grid of the
view's aligned depth is lifted to world points and projected into the neighbour; the score is
the median relative difference |d_neighbour(uv) - z| / z over points that land on valid depth.
It diagnoses alignment (two views fitted to different scales disagree); it changes nothing.
"""

from __future__ import annotations

import numpy as np

from pipelines.report.collect import RunData, view_npz

GRID = (48, 36)  # samples across, down: enough for a median, cheap at 100 views


def _scaled_K(cam: dict, shape: tuple[int, int]) -> np.ndarray:
    """Intrinsics of `cam` (cameras.json record) for a depth map of `shape` = (H, W)."""
    K = np.asarray(cam["K"], dtype=np.float64).copy()
    K[0] *= shape[1] / cam["width"]
    K[1] *= shape[0] / cam["height"]
    return K


def _lift(depth: np.ndarray, cam: dict) -> np.ndarray:
    """(M, 3) world points from a grid of valid pixels of an (H, W) z-depth map."""
    h, w = depth.shape
    us = (np.arange(GRID[0]) + 0.5) * w / GRID[0]
    vs = (np.arange(GRID[1]) + 0.5) * h / GRID[1]
    u, v = np.meshgrid(us, vs)
    z = depth[v.astype(int), u.astype(int)].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    pix = np.stack([u[ok], v[ok], np.ones(ok.sum())], axis=1)
    cam_pts = (np.linalg.inv(_scaled_K(cam, depth.shape)) @ pix.T).T * z[ok, None]
    world_from_cam = np.asarray(cam["world_from_cam"], dtype=np.float64)
    return cam_pts @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]


def pair_agreement(depth_a: np.ndarray, cam_a: dict, depth_b: np.ndarray, cam_b: dict) -> float:
    """Median relative depth difference of view a's points seen by view b (NaN: no overlap)."""
    world = _lift(depth_a, cam_a)
    cam_from_world = np.asarray(cam_b["cam_from_world"], dtype=np.float64)
    pts = world @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    pts = pts[pts[:, 2] > 1e-9]
    if len(pts) == 0:
        return float("nan")
    uvw = (_scaled_K(cam_b, depth_b.shape) @ pts.T).T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    h, w = depth_b.shape
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    if inside.sum() < 10:
        return float("nan")
    d = depth_b[v[inside].astype(int), u[inside].astype(int)].astype(np.float64)
    z = pts[inside, 2]
    ok = np.isfinite(d) & (d > 0)
    return float(np.median(np.abs(d[ok] - z[ok]) / z[ok])) if ok.sum() >= 10 else float("nan")


def neighbour_agreement(run: RunData) -> dict[str, tuple[str, float]]:
    """view -> (its nearest camera's view, median relative depth difference)."""
    names = [n for n in run.view_names if n in run.cameras]
    depths = {n: view_npz(run, "align", n).get("depth") for n in names}
    names = [n for n in names if depths[n] is not None]
    if len(names) < 2:
        return {}
    centers = np.array([np.asarray(run.cameras[n]["world_from_cam"])[:3, 3] for n in names])
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    out = {}
    for i, name in enumerate(names):
        other = names[int(np.argmin(dist[i]))]
        score = pair_agreement(depths[name], run.cameras[name], depths[other], run.cameras[other])
        out[name] = (other, score)
    return out
