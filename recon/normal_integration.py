"""Depth from normals: anchored normal integration, normals from depth, and the unknown shift.

Normal integration. For a surface seen through pixel rays r = K^-1 (u, v, 1) (z = 1), the plane
through pixel p with unit normal n predicts the depth at a neighbour q as
z_q = z_p (n . r_p) / (n . r_q), i.e. a log-depth step g_pq = log(n . r_p) - log(n . r_q).
We solve for x = log z on the valid pixels:

    min_x  sum_edges w_e (x_q - x_p - g_pq)^2  +  lam * sum_pixels c_p (x_p - log z0_p)^2

with g the average of the steps predicted by both endpoints' normals, edges only between
neighbours that the discontinuity test (`recon.single_view`) keeps connected and whose normals
are not near-grazing, w_e a Cauchy weight of the disagreement between the input step and g,
and c the confidence (1 without one). The normals fix the shape at short range; the anchor keeps the
input depth at long range (length scale ~ 1 / sqrt(lam) pixels). It is a sparse symmetric
positive definite system (scipy `spsolve`).

Shift recovery. An affine-invariant prediction v (depth: z = a v + b; disparity: 1/z = a v + b)
leaves the ratio t = b / a unknown even when the scale is set by the user; a wrong t bends
planes. With predicted normals, t is found by a 1-D search that makes the normals of the
backprojected depth agree best with the predicted normals (focal length taken as known).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from recon.geometry import camera_rays
from recon.records import Camera, DepthSpace
from recon.single_view import (
    EDGE_DOWN,
    EDGE_RIGHT,
    CutOptions,
    _plane_step,
    edge_flags,
    noise_adapted,
    valid_depth,
)


@dataclass(frozen=True)
class RefineInfo:
    """What the normal integration did."""

    pixels: int  # unknowns solved for
    edges: int  # neighbour constraints used
    edges_cut: int  # neighbour pairs left out as discontinuities
    lam: float  # anchor weight
    median_change: float  # median |log z_refined - log z_input| (relative depth change)

    def summary(self) -> dict:
        return dict(self.__dict__)


def _edge_system(depth, camera, normal, valid, opts: CutOptions, robust: float, max_angle: float):
    """Rows (p, q, g, w) of the difference operator for kept right/down neighbour pairs.

    Edges are dropped when cut as discontinuities or when a predicted normal is more oblique
    than `max_angle` degrees (near-grazing normals predict unreliable steps); the others get
    a Cauchy weight w = 1 / (1 + (r / robust)^2) of r = |input log step - normal step|, so
    normals and depth that disagree strongly (blurred edges) do not drag the surface.
    """
    h, w = depth.shape
    rays = camera_rays(camera.K, h, w)
    points = rays * np.where(valid, depth, np.nan)[..., None]
    idx = np.arange(h * w).reshape(h, w)
    floor = math.cos(math.radians(opts.max_normal_angle_deg))
    facing = np.abs(np.einsum("...k,...k->...", normal, rays)) / np.linalg.norm(rays, axis=-1)
    steep = facing < math.cos(math.radians(max_angle))
    logz = np.log(np.where(valid, depth, 1.0))
    ps, qs, gs, ws, n_cut = [], [], [], [], 0
    for pairs in (EDGE_RIGHT, EDGE_DOWN):
        (ra, ca), (rb, cb) = pairs
        both = valid[ra, ca] & valid[rb, cb]
        by_angle, by_jump = edge_flags(points, rays, normal, pairs, opts)
        keep = both & ~by_angle & ~by_jump
        n_cut += int((both & ~keep).sum())
        keep &= ~steep[ra, ca] & ~steep[rb, cb]
        g_a = _plane_step(normal[ra, ca], rays[ra, ca], rays[rb, cb], floor)
        g_b = -_plane_step(normal[rb, cb], rays[rb, cb], rays[ra, ca], floor)
        g = 0.5 * (g_a + g_b)[keep]
        r = (logz[rb, cb] - logz[ra, ca])[keep] - g
        ps.append(idx[ra, ca][keep])
        qs.append(idx[rb, cb][keep])
        gs.append(g)
        ws.append(1.0 / (1.0 + (r / robust) ** 2) if robust > 0 else np.ones_like(g))
    cat = np.concatenate
    return cat(ps), cat(qs), cat(gs), cat(ws), n_cut


def refine_depth_with_normals(
    depth: np.ndarray,
    normal: np.ndarray,
    camera: Camera,
    confidence: np.ndarray | None = None,
    lam: float = 1e-3,
    opts: CutOptions | None = None,
    robust: float = 0.003,
    max_angle_deg: float = 80.0,
) -> tuple[np.ndarray, RefineInfo]:
    """Anchored least-squares normal integration in log depth (see module docstring).

    depth: (H, W) z-depth, 0/NaN invalid; normal: (H, W, 3) unit, OpenCV camera frame,
    facing the camera; confidence: (H, W) in [0, 1] weighting the anchor, or None;
    lam: anchor weight; robust: Cauchy scale of the edge weights (log-depth units, 0 = off;
    at least twice the measured step noise);
    max_angle_deg: edges at pixels whose predicted normal is more oblique are left out.
    Returns the refined (H, W) float32 depth (invalid pixels stay 0) and a RefineInfo.
    """
    depth = np.asarray(depth, dtype=np.float64)
    opts, sigma = noise_adapted(depth, opts or CutOptions())
    robust = max(robust, 2.0 * sigma) if robust > 0 else 0.0  # noise is not disagreement
    h, w = depth.shape
    if (camera.width, camera.height) != (w, h):
        camera = camera.scaled(w, h)
    valid = valid_depth(depth) & np.all(np.isfinite(normal), axis=-1)
    valid &= np.linalg.norm(normal, axis=-1) > 0.5
    p, q, g, wts, n_cut = _edge_system(depth, camera, normal, valid, opts, robust, max_angle_deg)
    # Renumber to the valid pixels only.
    order = np.full(h * w, -1, dtype=np.int64)
    flat_valid = np.flatnonzero(valid)
    order[flat_valid] = np.arange(len(flat_valid))
    n, m = len(flat_valid), len(g)
    x0 = np.log(depth.ravel()[flat_valid])
    c = np.ones(n) if confidence is None else np.clip(confidence.ravel()[flat_valid], 1e-3, 1)
    rows = np.repeat(np.arange(m), 2)
    cols = np.stack([order[p], order[q]], axis=1).ravel()
    vals = (np.array([-1.0, 1.0]) * np.sqrt(wts)[:, None]).ravel()
    D = sparse.csr_matrix((vals, (rows, cols)), shape=(m, n))
    A = (D.T @ D + sparse.diags(lam * c)).tocsc()
    b = D.T @ (np.sqrt(wts) * g) + lam * c * x0
    x = sparse_linalg.spsolve(A, b)
    out = np.zeros(h * w, dtype=np.float32)
    out[flat_valid] = np.exp(x)
    info = RefineInfo(
        pixels=n,
        edges=m,
        edges_cut=n_cut,
        lam=lam,
        median_change=float(np.median(np.abs(x - x0))) if n else 0.0,
    )
    return out.reshape(h, w), info


def central_difference_normals(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """(H, W, 3) float32 unit normals of a z-depth map (central differences), OpenCV camera
    frame, facing the camera; 0 where a neighbour is invalid.

    Strict central differences on purpose: `recon.geometry.normals_from_depth` takes the
    smaller one-sided difference near edges (right for fusion weights), but used for the
    shift search below it biased the disagreement and raised the single-view Chamfer (mean of
    six sample-scene views) from 2.5 % to 3.8 % of the median depth
    (`python -m tests.test_single_view`)."""
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    pts = camera_rays(camera.K, h, w) * np.where(valid_depth(depth), depth, np.nan)[..., None]
    du = np.full_like(pts, np.nan)
    dv = np.full_like(pts, np.nan)
    du[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dv[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(dv, du)  # (down x right) faces the camera (z < 0 for a frontal plane)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / norm
    return np.nan_to_num(n, nan=0.0).astype(np.float32)


def affine_to_depth(values: np.ndarray, space: DepthSpace, shift: float) -> np.ndarray:
    """Relative depth from an affine-invariant map with `shift` = b / a (see module docstring).

    depth: z = v + shift; disparity: z = 1 / (v + shift). Non-positive results are NaN.
    """
    mapped = np.asarray(values, dtype=np.float64) + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mapped if space == "depth" else 1.0 / mapped
    return np.where(np.isfinite(z) & (z > 0), z, np.nan)


def block_mean(arr: np.ndarray, step: int) -> np.ndarray:
    """NaN-aware mean over step x step blocks (the image cropped to whole blocks)."""
    h, w = arr.shape[:2]
    hb, wb = h // step, w // step
    blocks = arr[: hb * step, : wb * step].reshape(hb, step, wb, step, *arr.shape[2:])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(1, 3))


def _normal_disagreement(z, camera, normal, mask) -> float:
    """Mean (1 - cos) between normals of depth z and predicted normals over `mask`."""
    nz = central_difference_normals(z, camera)
    ok = mask & (np.abs(nz).sum(-1) > 0)
    if ok.sum() < 50:
        return math.inf
    cos = np.clip(np.einsum("...k,...k->...", nz[ok], normal[ok]), -1, 1)
    return float(np.mean(np.minimum(1.0 - cos, 1.0)))  # capped: edges do not dominate


def recover_shift(
    values: np.ndarray,
    space: DepthSpace,
    normal: np.ndarray,
    camera: Camera,
    max_side: int = 128,
    num_grid: int = 48,
) -> tuple[float, float]:
    """Shift t (= b / a) that makes depth-derived normals agree with predicted normals.

    values: (H, W) affine-invariant depth or disparity (NaN = unknown); normal: (H, W, 3)
    unit normals, OpenCV camera frame. Works on step x step block means (long side about
    `max_side`). Searches t in units of the median |value| over a grid
    (warped so that small and large shifts get equal attention), then refines by golden
    section. Returns (t, disagreement at t) where disagreement is mean (1 - cos).
    """
    values = np.asarray(values, dtype=np.float64)
    h, w = values.shape
    step = max(1, int(math.ceil(max(h, w) / max_side)))
    # Block means: normals and values at the same (coarser) scale as the finite differences.
    v = block_mean(values, step)
    nrm = block_mean(np.asarray(normal, dtype=np.float64), step)
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    cam = camera.scaled(w, h) if (camera.width, camera.height) != (w, h) else camera
    K = cam.K.copy()
    K[:2] /= step  # block k spans pixels [k step, (k + 1) step): centre u = (k + 0.5) step
    small = Camera(K=K, width=v.shape[1], height=v.shape[0])
    finite = np.isfinite(v)
    scale = float(np.median(np.abs(v[finite])))
    low = float(np.percentile(v[finite], 2))
    t_min = -low / scale + 1e-3  # keeps 98 % of the pixels positive
    mask = finite & (np.linalg.norm(nrm, axis=-1) > 0.5)

    def cost(s: float) -> float:
        return _normal_disagreement(affine_to_depth(v, space, s * scale), small, nrm, mask)

    # Warp: s = t_min + (e^y - 1) covers [t_min, t_min + 100] with fine steps near t_min.
    ys = np.linspace(0.0, math.log(101.0), num_grid)
    grid = [t_min + math.expm1(y) for y in ys]
    costs = [cost(s) for s in grid]
    k = int(np.argmin(costs))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best = _golden(cost, lo, hi, iters=24)
    return best * scale, cost(best)


def _golden(f, lo: float, hi: float, iters: int) -> float:
    """Golden-section minimisation of a unimodal f on [lo, hi]."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return 0.5 * (a + b)
