"""Metrics against ground truth: mesh accuracy/completeness/F-score, depth and normal errors,
and the similarity (Umeyama) that puts an SfM model into the ground-truth frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from recon.geometry import camera_center

DEFAULT_THRESHOLDS = (0.005, 0.01, 0.02)  # fractions of the ground truth's extent


@dataclass(frozen=True)
class MeshMetrics:
    """Distances in world units; thresholds as fractions of `extent`."""

    accuracy: float  # mean distance predicted -> ground truth
    completeness: float  # mean distance ground truth -> predicted
    chamfer: float  # mean of accuracy and completeness
    accuracy_median: float
    completeness_median: float
    extent: float  # ground truth bounding-box diagonal
    thresholds: tuple[float, ...]
    precision: tuple[float, ...]  # share of predicted samples within threshold * extent of GT
    recall: tuple[float, ...]  # share of GT samples within threshold * extent of predicted
    fscore: tuple[float, ...]

    def summary(self) -> dict:
        out = asdict(self)
        for k, t in enumerate(self.thresholds):
            tag = f"{100 * t:g}%"
            out[f"precision@{tag}"] = self.precision[k]
            out[f"recall@{tag}"] = self.recall[k]
            out[f"fscore@{tag}"] = self.fscore[k]
        return out


def sample_surface(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points drawn uniformly by area over the mesh's triangles (fixed seed)."""
    tris = np.asarray(mesh.triangles, dtype=np.float64)
    if len(tris) == 0:
        raise ValueError("mesh has no triangles")
    area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    face = rng.choice(len(tris), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1  # fold the unit square onto the triangle
    r1, r2 = np.where(flip, 1 - r1, r1), np.where(flip, 1 - r2, r2)
    t = tris[face]
    return t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])


def mesh_metrics(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh,
    num_samples: int = 200_000,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    extent: float | None = None,
    seed: int = 0,
) -> MeshMetrics:
    """Accuracy, completeness, Chamfer and precision/recall/F-score of `pred` against `gt`.

    Both meshes in the same frame and units. extent defaults to GT's bounding-box diagonal.
    """
    if extent is None:
        extent = float(np.linalg.norm(np.ptp(np.asarray(gt.vertices), axis=0)))
    p = sample_surface(pred, num_samples, seed)
    g = sample_surface(gt, num_samples, seed + 1)
    return point_metrics(p, g, thresholds, extent)


def point_metrics(
    pred_pts: np.ndarray, gt_pts: np.ndarray, thresholds: Sequence[float], extent: float
) -> MeshMetrics:
    """Metrics between two point samples (N, 3) and (M, 3); see `mesh_metrics`."""
    d_pred = cKDTree(gt_pts).query(pred_pts, workers=-1)[0]
    d_gt = cKDTree(pred_pts).query(gt_pts, workers=-1)[0]
    prec, rec, fs = [], [], []
    for t in thresholds:
        pr = float(np.mean(d_pred <= t * extent))
        rc = float(np.mean(d_gt <= t * extent))
        prec.append(pr)
        rec.append(rc)
        fs.append(2 * pr * rc / (pr + rc) if pr + rc > 0 else 0.0)
    acc, comp = float(d_pred.mean()), float(d_gt.mean())
    return MeshMetrics(
        accuracy=acc, completeness=comp, chamfer=0.5 * (acc + comp),
        accuracy_median=float(np.median(d_pred)), completeness_median=float(np.median(d_gt)),
        extent=float(extent), thresholds=tuple(float(t) for t in thresholds),
        precision=tuple(prec), recall=tuple(rec), fscore=tuple(fs),
    )  # fmt: skip


def similarity_from_centers(
    src: np.ndarray, dst: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama similarity (scale, R (3, 3), t (3,)) minimising |dst - (scale * R @ src + t)|^2.

    src, dst: (N, 3) corresponding points (e.g. SfM and ground-truth camera centres), N >= 3
    and not collinear. R is a proper rotation (det +1).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f"need matching (N>=3, 3) arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var_s = float(np.mean(np.sum(xs**2, axis=1)))
    scale = float(np.trace(np.diag(S) @ D) / var_s)
    t = mu_d - scale * R @ mu_s
    return scale, R, t


def similarity_from_poses(
    src_cam_from_world: dict[str, np.ndarray], dst_cam_from_world: dict[str, np.ndarray]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (scale, R, t) taking frame `src` to frame `dst`, fitted on the centres of the
    cameras both hold (name -> (4, 4) cam_from_world), e.g. an SfM model and ground truth."""
    names = sorted(set(src_cam_from_world) & set(dst_cam_from_world))
    centres = [
        np.array([camera_center(poses[n]) for n in names]).reshape(-1, 3)
        for poses in (src_cam_from_world, dst_cam_from_world)
    ]
    return similarity_from_centers(*centres)


def apply_similarity(
    points: np.ndarray, similarity: tuple[float, np.ndarray, np.ndarray]
) -> np.ndarray:
    """(N, 3) points mapped by (scale, R, t): scale * R @ p + t."""
    scale, R, t = similarity
    return scale * (np.asarray(points, dtype=np.float64) @ R.T) + t


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """AbsRel (mean |pred - gt| / gt), delta1 (share with max(pred/gt, gt/pred) < 1.25), RMSE.

    pred, gt: (H, W) depth; pixels count where both are finite and positive (and `mask`).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(gt) & (pred > 0) & (gt > 0)
    if mask is not None:
        ok &= mask
    if not ok.any():
        return {"abs_rel": float("nan"), "delta1": float("nan"), "rmse": float("nan"), "n": 0}
    p, g = pred[ok], gt[ok]
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "n": int(ok.sum()),
    }


def normal_angular_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Angle (degrees) between unit normals (..., 3): mean, median, share within 11.25/22.5/30.

    Zero-length normals in either input are left out.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    npn, ngn = np.linalg.norm(pred, axis=-1), np.linalg.norm(gt, axis=-1)
    ok = (npn > 1e-8) & (ngn > 1e-8)
    if mask is not None:
        ok &= mask
    if not ok.any():
        return {"mean": float("nan"), "median": float("nan"), "n": 0}
    cos = np.sum(pred[ok] * gt[ok], axis=-1) / (npn[ok] * ngn[ok])
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    out = {"mean": float(ang.mean()), "median": float(np.median(ang)), "n": int(ok.sum())}
    for t in (11.25, 22.5, 30.0):
        out[f"within_{t:g}"] = float(np.mean(ang < t))
    return out
