"""Shape correction beyond a view's global scale/shift fit.

Monocular depth often carries a smooth, low-frequency multiplicative warp that one affine map
per view cannot remove. Two switchable corrections, both expressed as a multiplicative depth
field exp(c(u, v)) folded into Alignment.scale_field / shift_field (so `to_depth` applies it):

- smooth: a coarse bilinear grid of log-depth corrections fitted to the sparse points near the
  global fit, with a second-difference smoothness term and a weak pull to zero, solved by
  iteratively reweighted (Huber) least squares. Works in both spaces because a multiplicative
  depth factor is a multiplicative disparity factor.
- normals: log-depth re-integrated from the predicted normals at reduced resolution (screened
  Poisson): the normals' log-depth gradients, a weak anchor to the aligned depth, and a strong
  anchor to the sparse points; gradients across depth edges and grazing normals are dropped.

Each stage is kept only if it lowers the error on held-out sparse points (`validate`), so a
prediction whose normals carry the same warp as its depth, or wrong normals, does not undo the
smooth correction or the global fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse as sp
from scipy.sparse.linalg import spsolve

from .geometry import camera_rays, depth_edges
from .records import Alignment, AlignSamples, Camera, MonoPrediction
from .resample import resize_map, resize_normals


@dataclass(frozen=True)
class RefineParams:
    """Settings of the shape correction; `smooth` and `normals` can be combined."""

    smooth: bool = True  # coarse-grid log-depth correction fitted to sparse points
    grid_cells: int = 6  # grid cells along the image's long side
    smoothness: float = 1e-4  # weight of squared second differences of the grid
    damping: float = 1e-4  # weight pulling grid nodes towards zero (no correction)
    huber: float = 0.02  # relative error where the robust weights start to fall off
    iterations: int = 5  # IRLS rounds
    inlier_threshold: float = 0.15  # relative error to the global fit of points used here
    min_points: int = 30  # fewer such points => the view keeps its global fit
    validate: bool = True  # keep a stage only if it lowers the held-out sparse-point error
    max_correction: float = 0.5  # |log correction| clamp (0.5 ~ factor 1.65)
    normals: bool = True  # re-integrate depth from the predicted normals (skipped without)
    normal_resolution: int = 160  # long side (pixels) of the integration grid
    normal_anchor: float = 1e-4  # weight of the aligned depth anchor per pixel
    sparse_anchor: float = 10.0  # weight of each sparse inlier point
    min_cos: float = 0.2  # normals more grazing than this give no gradient
    edge_jump: float = 0.05  # relative depth jump treated as a discontinuity


def refine_alignment(
    pred: MonoPrediction,
    samples: AlignSamples,
    alignment: Alignment,
    params: RefineParams,
    K: np.ndarray | None = None,
) -> Alignment:
    """Return `alignment` with a multiplicative correction field, or unchanged when skipped.

    samples: the view's filtered sparse samples (uv px, prediction value, metric z); those
    within params.inlier_threshold relative error of the global fit drive the correction (a
    looser bound than the global fit's: a strong warp puts good points beyond it).
    K: (3, 3) intrinsics at the prediction's resolution; normal integration needs them.
    With params.validate, the corrections are fitted without every 5th point; each enabled
    stage (smooth, then normals) is kept only when it lowers the median relative error on the
    held-out points, and the kept stages are refitted on all points. Skips, the held-out
    errors and the kept stages are noted in the message.
    """
    if not (params.smooth or params.normals):
        return alignment
    z_global = alignment.to_depth(samples.value).astype(np.float64)
    with np.errstate(invalid="ignore"):
        inliers = samples.subset(
            np.abs(z_global - samples.z) <= params.inlier_threshold * samples.z
        )
    if len(inliers) < params.min_points:
        note = f"correction skipped: {len(inliers)} inliers < {params.min_points}"
        return replace(alignment, message=_join(alignment.message, note))
    notes = []
    use_normals = params.normals and pred.normal is not None and K is not None
    if params.normals and not use_normals:
        notes.append("normal integration skipped: no normals or no intrinsics")
    stages = [("smooth", params.smooth), ("normals", use_normals)]
    stages = [name for name, on in stages if on]
    if params.validate and stages:
        stages, note = _select_stages(pred, inliers, alignment, params, K, stages)
        notes.append(note)
    if not stages:
        return replace(alignment, message=_join(alignment.message, *notes))
    log_corr = _log_correction(pred, inliers, alignment, params, K, stages)
    out = _with_log_field(alignment, log_corr)
    return replace(out, message=_join(alignment.message, *notes))


def _select_stages(pred, inliers, alignment, params, K, stages):
    """Stages kept by held-out error: each enabled stage is added to the best so far and kept
    only when it lowers the median relative error on held-out points."""
    held = np.zeros(len(inliers), dtype=bool)
    held[np.random.default_rng(0).permutation(len(inliers))[::5]] = True
    train, test = inliers.subset(~held), inliers.subset(held)
    best_err, chosen = _median_error(alignment, test), []
    report = [f"global {best_err:.4f}"]
    for stage in stages:
        trial = _log_correction(pred, train, alignment, params, K, [*chosen, stage])
        err = _median_error(_with_log_field(alignment, trial), test)
        report.append(f"+{stage} {err:.4f}")
        if err < best_err:
            best_err, chosen = err, [*chosen, stage]
    kept = "+".join(chosen) or "global fit"
    return chosen, f"held-out error {', '.join(report)}; kept {kept}"


def _log_correction(pred, inliers, alignment, params, K, stages) -> np.ndarray:
    """(H, W) clipped log-depth correction from the given stages ("smooth", "normals")."""
    log_corr = np.zeros(pred.values.shape)
    if "smooth" in stages:
        log_corr += smooth_log_correction(pred, inliers, alignment, params)
    if "normals" in stages:
        base = _with_log_field(alignment, log_corr)
        log_corr += normal_log_correction(pred, inliers, base, K, params)
    return np.clip(log_corr, -params.max_correction, params.max_correction)


def _median_error(alignment: Alignment, s: AlignSamples) -> float:
    """Median relative depth error of an alignment (fields included) at sample points."""
    return float(np.median(corrected_relative_error(alignment, s)))


def corrected_relative_error(alignment: Alignment, s: AlignSamples) -> np.ndarray:
    """(M,) |z - z_sparse| / z_sparse of an alignment, correction fields included (read at the
    nearest pixel of each sample); inf where it gives no positive depth."""
    if alignment.scale_field is None:
        z = alignment.to_depth(s.value)
    else:
        h, w = alignment.scale_field.shape
        j = np.clip((s.uv[:, 0] - 0.5).round().astype(int), 0, w - 1)
        i = np.clip((s.uv[:, 1] - 0.5).round().astype(int), 0, h - 1)
        point = replace(alignment, scale_field=alignment.scale_field[i, j],
                        shift_field=alignment.shift_field[i, j])  # fmt: skip
        z = point.to_depth(s.value)
    err = np.abs(z - s.z) / s.z
    return np.where(np.isfinite(err), err, np.inf)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _with_log_field(alignment: Alignment, log_corr: np.ndarray) -> Alignment:
    """Fold depth *= exp(log_corr) into scale/shift fields (disparity divides by the factor)."""
    factor = np.exp(log_corr if alignment.space == "depth" else -log_corr)
    return replace(
        alignment,
        scale_field=(alignment.scale * factor).astype(np.float32),
        shift_field=(alignment.shift * factor).astype(np.float32),
    )


# --- smooth grid correction -------------------------------------------------------------------


def _hat_weights(x: np.ndarray, n: int, length: float) -> np.ndarray:
    """(len(x), n) linear interpolation weights of n nodes spread evenly over [0, length]."""
    t = np.clip(x / length * (n - 1), 0, n - 1)
    i0 = np.minimum(np.floor(t).astype(int), n - 2)
    f = t - i0
    out = np.zeros((len(x), n))
    rows = np.arange(len(x))
    out[rows, i0] = 1 - f
    out[rows, i0 + 1] = f
    return out


def _grid_shape(h: int, w: int, cells: int) -> tuple[int, int]:
    """Nodes (ny, nx) of a grid with `cells` cells along the long side."""
    long = max(h, w)
    return max(2, round(cells * h / long) + 1), max(2, round(cells * w / long) + 1)


def _second_differences(ny: int, nx: int) -> np.ndarray:
    """Rows of second differences along x and y of a (ny, nx) grid, flattened row-major."""
    rows = []
    idx = np.arange(ny * nx).reshape(ny, nx)
    for a, b, c in ((idx[:, :-2], idx[:, 1:-1], idx[:, 2:]), (idx[:-2], idx[1:-1], idx[2:])):
        for ia, ib, ic in zip(a.ravel(), b.ravel(), c.ravel()):
            r = np.zeros(ny * nx)
            r[[ia, ib, ic]] = (1.0, -2.0, 1.0)
            rows.append(r)
    return np.array(rows) if rows else np.zeros((0, ny * nx))


def smooth_log_correction(
    pred: MonoPrediction, inliers: AlignSamples, alignment: Alignment, params: RefineParams
) -> np.ndarray:
    """(H, W) log-depth correction c so that z_global * exp(c) fits the sparse inliers.

    Minimises mean_i rho(c(uv_i) - log(z_i / z_global_i)) + smoothness * |D2 c|^2
    + damping * |c|^2 over a coarse node grid; rho is Huber via IRLS.
    """
    h, w = pred.values.shape
    ny, nx = _grid_shape(h, w, params.grid_cells)
    z_global = alignment.to_depth(inliers.value).astype(np.float64)
    ok = np.isfinite(z_global) & (z_global > 0)
    target = np.log(inliers.z[ok] / z_global[ok])
    wx = _hat_weights(inliers.uv[ok, 0], nx, w)
    wy = _hat_weights(inliers.uv[ok, 1], ny, h)
    A = (wy[:, :, None] * wx[:, None, :]).reshape(len(target), ny * nx)
    D = _second_differences(ny, nx)
    reg = params.smoothness * D.T @ D + params.damping * np.eye(ny * nx)
    weights = np.ones(len(target))
    coef = np.zeros(ny * nx)
    for _ in range(max(1, params.iterations)):
        Aw = A * (weights / len(target))[:, None]
        coef = np.linalg.solve(A.T @ Aw + reg, Aw.T @ target)
        r = np.abs(A @ coef - target)
        weights = np.where(r <= params.huber, 1.0, params.huber / np.maximum(r, 1e-12))
    grid = coef.reshape(ny, nx)
    gx = _hat_weights(np.arange(w) + 0.5, nx, w)
    gy = _hat_weights(np.arange(h) + 0.5, ny, h)
    return gy @ grid @ gx.T


# --- normal integration -----------------------------------------------------------------------


def normal_log_correction(
    pred: MonoPrediction,
    inliers: AlignSamples,
    alignment: Alignment,
    K: np.ndarray,
    params: RefineParams,
) -> np.ndarray:
    """(H, W) log-depth correction from integrating the predicted normals at low resolution.

    Solves for x = log z on a reduced grid: x's finite differences match the normals' log-depth
    gradients, x stays near log(aligned depth) with weight normal_anchor, and x matches the
    sparse inliers with weight sparse_anchor. The low-resolution change is upsampled.
    K: (3, 3) intrinsics of the prediction's resolution, pixels.
    """
    h, w = pred.values.shape
    factor = max(1.0, max(h, w) / params.normal_resolution)
    hs, ws = max(2, round(h / factor)), max(2, round(w / factor))
    depth = alignment.to_depth(pred.values).astype(np.float64)
    depth_s = resize_map(depth, ws, hs).astype(np.float64)
    normal_s = resize_normals(pred.normal, ws, hs).astype(np.float64)
    Ks = Camera(K=np.asarray(K, dtype=np.float64), width=w, height=h).scaled(ws, hs).K
    valid = np.isfinite(depth_s) & (depth_s > 0)
    log_anchor = np.log(np.where(valid, depth_s, 1.0))
    gu, gv, gok = _log_depth_gradients(normal_s, Ks, params.min_cos)
    G, b = _gradient_rows(gu, gv, gok & valid, depth_edges(depth_s, params.edge_jump))
    uv_s = inliers.uv * np.array([ws / w, hs / h])
    S = _bilinear_rows(uv_s, hs, ws)
    lhs = G.T @ G + sp.diags((params.normal_anchor * valid + 1e-9).ravel())
    rhs = G.T @ b + params.normal_anchor * valid.ravel() * log_anchor.ravel()
    if params.sparse_anchor > 0 and S.shape[0]:
        lam = params.sparse_anchor
        lhs = lhs + lam * (S.T @ S)
        rhs = rhs + lam * (S.T @ np.log(inliers.z))
    x = spsolve(lhs.tocsc(), rhs).reshape(hs, ws)
    delta = np.where(valid, x - log_anchor, 0.0)
    return resize_map(delta.astype(np.float32), w, h).astype(np.float64)


def _log_depth_gradients(
    normal: np.ndarray, K: np.ndarray, min_cos: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel d(log z)/du, d(log z)/dv (per pixel) implied by unit normals, and a valid mask.

    A plane n . X = d through X = z * r (r = ((u - cx) / fx, (v - cy) / fy, 1)) has
    log z = log d - log(n . r), so d(log z)/du = -(n_x / fx) / (n . r).
    """
    h, w = normal.shape[:2]
    rays = camera_rays(K, h, w)
    nr = np.sum(normal * rays, axis=-1)
    cos = -nr / np.linalg.norm(rays, axis=-1)
    ok = np.isfinite(cos) & (cos >= min_cos)
    safe = np.where(ok, nr, -1.0)
    gu = -(normal[..., 0] / K[0, 0]) / safe
    gv = -(normal[..., 1] / K[1, 1]) / safe
    return np.where(ok, gu, 0.0), np.where(ok, gv, 0.0), ok


def _gradient_rows(
    gu: np.ndarray, gv: np.ndarray, ok: np.ndarray, edge: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse rows x_q - x_p = mean gradient for neighbouring pixel pairs not across an edge."""
    h, w = gu.shape
    idx = np.arange(h * w).reshape(h, w)
    use = ok & ~edge
    pairs, targets = [], []
    for g, sl_p, sl_q in (
        (gu, (slice(None), slice(0, w - 1)), (slice(None), slice(1, w))),
        (gv, (slice(0, h - 1), slice(None)), (slice(1, h), slice(None))),
    ):
        m = use[sl_p] & use[sl_q]
        pairs.append(np.stack([idx[sl_p][m], idx[sl_q][m]], axis=1))
        targets.append(0.5 * (g[sl_p][m] + g[sl_q][m]))
    pq = np.concatenate(pairs)
    n = len(pq)
    rows = np.repeat(np.arange(n), 2)
    vals = np.tile([-1.0, 1.0], n)
    G = sp.csr_matrix((vals, (rows, pq.ravel())), shape=(n, h * w))
    return G, np.concatenate(targets)


def _bilinear_rows(uv: np.ndarray, h: int, w: int) -> sp.csr_matrix:
    """(N, h*w) bilinear interpolation rows at uv (COLMAP pixel centres) of an (h, w) grid."""
    x = np.clip(uv[:, 0] - 0.5, 0, w - 1)
    y = np.clip(uv[:, 1] - 0.5, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(int), max(h - 2, 0))
    fx, fy = x - x0, y - y0
    rows, cols, vals = [], [], []
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                       (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        rows.append(np.arange(len(uv)))
        cols.append((y0 + dy) * w + (x0 + dx))
        vals.append(wt)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(uv), h * w)
    )
