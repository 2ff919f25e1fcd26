"""Robust scale/shift alignment of affine-invariant depth or disparity to sparse SfM points.

Per view: sample the prediction at the sparse points' pixels, drop unreliable points, then fit
in the prediction's own space (depth: z = s * v + t; disparity: 1 / z = s * v + t):

1. closed-form least squares on relative residuals (a start and one RANSAC hypothesis),
2. MSAC-scored RANSAC over 2-point minimal samples (seeded, deterministic),
3. a robust refit over all points (Cauchy loss on relative depth error).

Residuals are relative depth errors |z_pred - z| / z in both spaces. MSAC scoring plus the
robust refit matters when the sparse points sit in a narrow depth band (all on one wall):
plain max-inlier RANSAC then picks tilted fits that agree with the band but not the scene.
A view that cannot be fitted is reported with a status and a message, never silently fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from .geometry import sample_bilinear
from .records import (
    Alignment,
    AlignSamples,
    Camera,
    DepthSpace,
    Frame,
    MonoPrediction,
    SparseObservations,
)
from .refine import RefineParams, corrected_relative_error, refine_alignment

FALLBACKS = ("skip", "borrow")
CLIP_MODES = ("plateau", "always", "off")


@dataclass(frozen=True)
class AlignParams:
    """Settings of the per-view alignment. Relative errors are fractions of depth."""

    min_track_length: int = 3  # sparse points seen by fewer images are dropped
    max_reprojection_error: float = 2.0  # pixels
    min_points: int = 20  # fewer usable points => status "too_few_points"
    clip_fraction: float = 0.005  # band at each end of the prediction's range, fraction of range
    clip_mode: str = "plateau"  # plateau: drop the band only where values pile up at the end
    clip_plateau_fraction: float = 0.002  # share of pixels at an end that marks it as clipped
    inlier_threshold: float = 0.05  # relative depth error counted as inlier (MSAC threshold)
    ransac_iterations: int = 300
    seed: int = 0
    refit_loss: str = "cauchy"  # scipy least_squares loss of the refit (redescending: no bias)
    max_residual: float = 0.15  # median relative error of inliers above this => "failed"
    min_inlier_ratio: float = 0.3  # inliers / points below this => "failed"
    fallback: str = "skip"  # what align_views does with failed views: skip | borrow
    borrow_neighbors: int = 3  # k nearest aligned views (camera centres) to borrow from
    refine: RefineParams | None = None  # smooth shape correction after the global fit

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {CLIP_MODES}, got {self.clip_mode!r}")
        if self.min_points < 2 or self.ransac_iterations < 1 or self.borrow_neighbors < 1:
            raise ValueError("align.min_points must be >= 2, ransac_iterations/neighbors >= 1")
        if not (self.inlier_threshold > 0 and self.max_residual > 0):
            raise ValueError("align.inlier_threshold and align.max_residual must be > 0")


def clipped_mask(values: np.ndarray, params: AlignParams) -> np.ndarray:
    """(H, W) bool: prediction pixels at the ends of its range, where it is not affine.

    With clip_mode "plateau" an end counts as clipped only when at least
    `clip_plateau_fraction` of the pixels sit exactly on it (a saturated model output), so an
    unclipped far wall near the maximum keeps its points.
    """
    finite = np.isfinite(values)
    out = np.zeros(values.shape, dtype=bool)
    if params.clip_mode == "off" or not finite.any():
        return out
    lo, hi = float(values[finite].min()), float(values[finite].max())
    band = params.clip_fraction * (hi - lo)
    exact = 1e-6 * max(hi - lo, 1e-12)
    n = int(finite.sum())
    with np.errstate(invalid="ignore"):
        for end, near in ((lo, values <= lo + band), (hi, values >= hi - band)):
            on_end = int(np.count_nonzero(np.abs(values - end) <= exact))
            if params.clip_mode == "always" or on_end >= params.clip_plateau_fraction * n:
                out |= near
    return out


def prepare_samples(
    pred: MonoPrediction, sparse: SparseObservations, params: AlignParams
) -> AlignSamples:
    """Filter sparse points (track, reprojection error, depth > 0) and sample the prediction.

    Samples that are NaN, outside the image, or touch clipped prediction pixels are dropped.
    """
    keep = (
        (sparse.track_length >= params.min_track_length)
        & (sparse.reprojection_error <= params.max_reprojection_error)
        & np.isfinite(sparse.z)
        & (sparse.z > 0)
        & np.all(np.isfinite(sparse.uv), axis=1)
    )
    uv, z = sparse.uv[keep], sparse.z[keep]
    value = sample_bilinear(pred.values, uv)
    ok = np.isfinite(value)
    clipped = clipped_mask(pred.values, params)
    if clipped.any():
        touched = sample_bilinear(clipped.astype(np.float64), uv)
        ok &= touched <= 0
    return AlignSamples(uv=uv[ok], value=value[ok], z=z[ok])


def predicted_depth(scale: float, shift: float, value: np.ndarray, space: DepthSpace) -> np.ndarray:
    """Metric depth from prediction values; NaN where the mapped value is not positive."""
    mapped = scale * value + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = mapped if space == "depth" else 1.0 / mapped
    return np.where(mapped > 0, depth, np.nan)


def relative_error(scale: float, shift: float, s: AlignSamples, space: DepthSpace) -> np.ndarray:
    """(M,) |z_pred - z| / z; infinite where the fit gives no positive depth."""
    err = np.abs(predicted_depth(scale, shift, s.value, space) - s.z) / s.z
    return np.where(np.isfinite(err), err, np.inf)


def _linear_system(s: AlignSamples, space: DepthSpace) -> tuple[np.ndarray, np.ndarray]:
    """Rows A, b with A @ (scale, shift) - b = relative residual (exact for depth space).

    depth: (s v + t) / z - 1; disparity: z (s v + t) - 1, the relative disparity error, which
    equals the relative depth error to first order.
    """
    w = 1.0 / s.z if space == "depth" else s.z
    A = np.stack([s.value * w, w], axis=1)
    return A, np.ones_like(s.z)


def least_squares_fit(s: AlignSamples, space: DepthSpace) -> tuple[float, float]:
    """Closed-form (scale, shift) minimising squared relative residuals."""
    A, b = _linear_system(s, space)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    return float(sol[0]), float(sol[1])


def msac_cost(err: np.ndarray, threshold: float) -> float:
    """MSAC score: sum of min(err^2, threshold^2) (lower is better)."""
    return float(np.sum(np.minimum(err, threshold) ** 2))


def ransac_fit(
    s: AlignSamples, space: DepthSpace, start: tuple[float, float], params: AlignParams
) -> tuple[float, float]:
    """Best (scale, shift) by MSAC cost over 2-point hypotheses plus the `start` hypothesis."""
    A, b = _linear_system(s, space)
    rng = np.random.default_rng(params.seed)
    best, best_cost = start, msac_cost(relative_error(*start, s, space), params.inlier_threshold)
    spread = float(np.ptp(s.value)) if len(s) else 0.0
    pairs = rng.integers(0, len(s), size=(params.ransac_iterations, 2))
    for i, j in pairs:
        # Near-equal values make the 2x2 system ill-conditioned: any slope fits them.
        if abs(s.value[i] - s.value[j]) <= 1e-3 * spread:
            continue
        try:
            sol = np.linalg.solve(A[[i, j]], b[[i, j]])
        except np.linalg.LinAlgError:
            continue
        if sol[0] <= 0:
            continue
        cost = msac_cost(relative_error(sol[0], sol[1], s, space), params.inlier_threshold)
        if cost < best_cost:
            best, best_cost = (float(sol[0]), float(sol[1])), cost
    return best


def robust_refit(
    s: AlignSamples, space: DepthSpace, start: tuple[float, float], params: AlignParams
) -> tuple[float, float]:
    """Refit (scale, shift) over all points with a robust loss on relative depth error."""
    v, z = s.value, s.z

    def residual(x: np.ndarray) -> np.ndarray:
        mapped = x[0] * v + x[1]
        if space == "depth":
            return mapped / z - 1.0
        # 1 / (z * mapped) - 1 is the relative depth error; clamp keeps it finite mid-solve.
        return 1.0 / np.maximum(z * mapped, 1e-6) - 1.0

    x0 = np.asarray(start, dtype=np.float64)
    res = least_squares(
        residual, x0, loss=params.refit_loss, f_scale=params.inlier_threshold / 2, method="trf"
    )
    return float(res.x[0]), float(res.x[1])


def fit_samples(
    s: AlignSamples, space: DepthSpace, params: AlignParams
) -> tuple[Alignment, np.ndarray]:
    """Fit one view's samples. Returns the alignment and the (M,) inlier mask."""
    n = len(s)
    none = np.zeros(n, dtype=bool)
    if n < params.min_points:
        msg = f"{n} usable sparse points < min_points={params.min_points}"
        return _failed(space, n, "too_few_points", msg), none
    start = least_squares_fit(s, space)
    best = ransac_fit(s, space, start, params)
    scale, shift = robust_refit(s, space, best, params)
    err = relative_error(scale, shift, s, space)
    inliers = err <= params.inlier_threshold
    n_in, residual = _inlier_stats(err, inliers)
    out = Alignment(
        scale=scale, shift=shift, space=space, num_points=n, num_inliers=n_in, residual=residual
    )
    problem = _fit_problem(out, params)
    if problem:
        return replace(out, status="failed", message=problem), inliers
    return out, inliers


def _inlier_stats(err: np.ndarray, inliers: np.ndarray) -> tuple[int, float]:
    """(number of inliers, median relative error over them; inf when there is none)."""
    n_in = int(inliers.sum())
    return n_in, float(np.median(err[inliers])) if n_in else float("inf")


def _fit_problem(a: Alignment, params: AlignParams) -> str:
    """A one-line reason the fit is not trustworthy, or '' when it is."""
    if not (np.isfinite(a.scale) and np.isfinite(a.shift)) or a.scale <= 0:
        return f"non-positive or non-finite scale {a.scale:.4g}"
    if a.num_inliers < max(params.min_inlier_ratio * a.num_points, 2):
        return f"only {a.num_inliers}/{a.num_points} inliers"
    if not a.residual <= params.max_residual:
        return f"median relative error {a.residual:.3f} > max_residual={params.max_residual}"
    return ""


def _failed(space: DepthSpace, n: int, status: str, message: str) -> Alignment:
    return Alignment(
        scale=float("nan"), shift=float("nan"), space=space, num_points=n, status=status,
        message=message,
    )  # fmt: skip


def align_view(
    pred: MonoPrediction,
    sparse: SparseObservations,
    params: AlignParams,
    camera: Camera | None = None,
) -> Alignment:
    """Align one prediction to the sparse points it observes.

    camera: the frame's camera (only needed by normal integration in `params.refine`); it is
    rescaled when the prediction's resolution differs from the camera's.

    Returns an Alignment with status "ok", "too_few_points" or "failed" (scale NaN for the
    latter two unless a fit was made and rejected). With `params.refine` set, an "ok" fit also
    gets a smooth correction field fitted to the points near it (see recon.refine).
    """
    samples = prepare_samples(pred, sparse, params)
    alignment, _ = fit_samples(samples, pred.space, params)
    if params.refine is None or not _correctable(alignment):
        return alignment
    K = None
    if camera is not None:
        h, w = pred.values.shape
        K = camera.scaled(w, h).K
    # A global fit rejected for its inliers may be explained by the correction (a strong warp
    # puts good points beyond the global threshold): correct first, judge afterwards.
    trial = replace(alignment, status="ok", message="")
    if alignment.status != "ok":
        problem = _held_out_problem(pred, samples, trial, params, K)
        if problem:
            return replace(alignment, message=_join(alignment.message, problem))
    refined = refine_alignment(pred, samples, trial, params.refine, K)
    if refined.scale_field is None:
        if alignment.status == "ok":
            return refined  # the global fit, with the note saying why nothing was corrected
        return replace(alignment, message=_join(alignment.message, refined.message))
    return judge_corrected(refined, samples, alignment, params)


def _correctable(alignment: Alignment) -> bool:
    """A fit the shape correction can start from: kept, or rejected only for its inliers."""
    if alignment.status not in ("ok", "failed"):
        return False
    return bool(np.isfinite(alignment.scale) and np.isfinite(alignment.shift)) and (
        alignment.scale > 0
    )


def _held_out_problem(
    pred: MonoPrediction, s: AlignSamples, trial: Alignment, params: AlignParams, K
) -> str:
    """Why a correction cannot rescue a rejected global fit, or '' when it can.

    Fitted without every 5th sparse point, the corrected prediction must make enough of those
    held-out points inliers, and clearly more than the same correction applied to a constant
    prediction: a smooth field through dense sparse points is itself a rough depth map, and
    must not pass off an unrelated prediction as explained.
    """
    held = np.zeros(len(s), dtype=bool)
    held[np.random.default_rng(params.seed).permutation(len(s))[::5]] = True
    ratio = _held_out_inlier_ratio(pred, s, trial, held, params, K)
    if ratio < params.min_inlier_ratio:
        return f"corrected fit explains {100 * ratio:.0f}% of held-out points"
    flat = _held_out_inlier_ratio(*_constant_prediction(pred, s, trial), held, params, K)
    if ratio < flat + 0.5 * (1.0 - flat):
        return (
            f"corrected fit explains {100 * ratio:.0f}% of held-out points, a constant depth "
            f"{100 * flat:.0f}%: the prediction adds too little"
        )
    return ""


def _held_out_inlier_ratio(pred, s: AlignSamples, trial, held, params: AlignParams, K) -> float:
    """Share of the `held` samples within the inlier threshold of a correction fitted without
    them (0 when no correction can be fitted)."""
    fitted = refine_alignment(pred, s.subset(~held), trial, params.refine, K)
    if fitted.scale_field is None:
        return 0.0
    err = corrected_relative_error(fitted, s.subset(held))
    return float(np.mean(err <= params.inlier_threshold))


def _constant_prediction(
    pred: MonoPrediction, s: AlignSamples, trial: Alignment
) -> tuple[MonoPrediction, AlignSamples, Alignment]:
    """A prediction of 1 everywhere, its samples, and the alignment mapping it to the median
    sparse depth."""
    z = float(np.median(s.z))
    target = z if pred.space == "depth" else 1.0 / z
    flat = MonoPrediction(values=np.ones_like(pred.values), space=pred.space, normal=None)
    samples = AlignSamples(uv=s.uv, value=np.ones_like(s.z), z=s.z)
    return flat, samples, replace(trial, scale=target / 2.0, shift=target / 2.0)


def judge_corrected(
    corrected: Alignment, s: AlignSamples, global_fit: Alignment, params: AlignParams
) -> Alignment:
    """The corrected alignment with inliers, residual and status measured after the correction
    (same thresholds as the global fit); the global fit's counts are noted in the message."""
    err = corrected_relative_error(corrected, s)
    n_in, residual = _inlier_stats(err, err <= params.inlier_threshold)
    out = replace(corrected, num_inliers=n_in, residual=residual, status="ok")
    note = f"global fit {global_fit.num_inliers}/{global_fit.num_points} inliers"
    if global_fit.status != "ok":
        note += f" (rejected: {global_fit.message}; kept after the correction)"
    problem = _fit_problem(out, params)
    if problem:
        return replace(out, status="failed", message=_join(f"after correction: {problem}", note))
    return replace(out, message=_join(corrected.message, note))


def for_model_size(params: AlignParams, num_views: int) -> AlignParams:
    """`params` with min_track_length at most the number of registered views: a model of two
    views has only tracks of length 2, and a filter asking for 3 would leave no point at all."""
    if 2 <= num_views < params.min_track_length:
        return replace(params, min_track_length=num_views)
    return params


def align_views(
    preds: Mapping[str, MonoPrediction],
    frames: Sequence[Frame] | Mapping[str, Frame],
    params: AlignParams,
) -> dict[str, Alignment]:
    """Align every prediction whose frame is given; failed views handled per params.fallback.

    skip: failed views keep their failed status (the caller leaves them out of fusion).
    borrow: a failed view takes the median scale/shift of the k nearest aligned views of the
    same space (by camera centre), with status "borrowed"; it stays failed if none exist.
    Frames without sparse observations count as "too_few_points".
    """
    by_name = dict(frames) if isinstance(frames, Mapping) else {f.name: f for f in frames}
    params = for_model_size(params, len(by_name))
    out: dict[str, Alignment] = {}
    for name, pred in preds.items():
        frame = by_name.get(name)
        if frame is None or frame.sparse is None:
            out[name] = _failed(pred.space, 0, "too_few_points", "no sparse observations")
            continue
        out[name] = align_view(pred, frame.sparse, params, frame.camera)
    if params.fallback == "borrow":
        out = borrow_alignments(out, by_name, params.borrow_neighbors)
    return out


def borrow_alignments(
    alignments: Mapping[str, Alignment], frames: Mapping[str, Frame | np.ndarray], k: int
) -> dict[str, Alignment]:
    """Give each unusable view the median scale/shift of its k nearest "ok" views.

    frames: per view name, its Frame (with a pose) or directly its (3,) camera centre (world).
    Views without a centre neither borrow nor lend. Smooth correction fields are not borrowed.
    """
    centres = {n: c for n, c in ((n, _centre(f)) for n, f in frames.items()) if c is not None}
    out = dict(alignments)
    donors = [n for n, a in alignments.items() if a.status == "ok" and n in centres]
    for name, a in alignments.items():
        if a.usable:
            continue
        pool = [n for n in donors if alignments[n].space == a.space]
        if name not in centres or not pool:
            out[name] = replace(a, message=_join(a.message, "no aligned neighbour to borrow from"))
            continue
        dist = np.linalg.norm(np.stack([centres[n] for n in pool]) - centres[name], axis=1)
        chosen = [pool[i] for i in np.argsort(dist)[:k]]
        out[name] = replace(
            a,
            scale=float(np.median([alignments[n].scale for n in chosen])),
            shift=float(np.median([alignments[n].shift for n in chosen])),
            status="borrowed",
            message=_join(a.message, f"borrowed median of {', '.join(chosen)}"),
        )
    return out


def _centre(frame: Frame | np.ndarray) -> np.ndarray | None:
    if isinstance(frame, Frame):
        return None if frame.cam_from_world is None else frame.center
    centre = np.asarray(frame, dtype=np.float64).reshape(-1)
    return centre if centre.shape == (3,) and np.all(np.isfinite(centre)) else None


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
