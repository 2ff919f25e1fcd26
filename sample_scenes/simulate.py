"""Simulated Lotus predictions: ground-truth depth and normals turned into what a monocular
model outputs, with known, tunable errors.

Depth: blurred across discontinuities, warped by a smooth low-frequency multiplicative field,
per-pixel noise, optional outliers, then mapped into an affine-invariant depth or disparity
with a random per-view scale and shift. Normals: blurred across edges, rotated by a spatially
smooth random field and per-pixel noise. Normals stay in the OpenCV camera frame.

`ORACLE` is exactly affine to ground truth; `LOTUS_LIKE` is calibrated so that after a per-view
least-squares affine fit (in the prediction's space) depth AbsRel is ~0.05 and the mean normal
angular error ~10 degrees (see `affine_fit_errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from recon.atomic import write_npz
from recon.records import DEPTH_SPACES, DepthSpace, MonoPrediction
from sample_scenes import realistic_errors as realistic

EDGE_STEP = 0.05  # relative depth jump between neighbours that counts as a discontinuity


@dataclass(frozen=True)
class SimulationParams:
    """Error model of a simulated prediction. Lengths in pixels are fractions of the image's
    long side so a setting means the same at any resolution."""

    name: str = "custom"  # producer tag suffix
    scale_range: tuple[float, float] = (0.5, 2.0)  # log-uniform scale of the output affine map
    shift_range: tuple[float, float] = (-0.3, 0.3)  # shift, in units of the output's spread
    warp_std: float = 0.0  # rms of the smooth log-depth warp (0.03 = 3 % depth error)
    warp_bumps: int = 3  # wide Gaussian bumps added to the quadratic warp polynomial
    pixel_noise: float = 0.0  # rms of independent per-pixel relative depth noise
    edge_blur: float = 0.0  # Gaussian sigma of the depth and normal blur / long side
    normal_smooth_deg: float = 0.0  # rms angle of the smooth normal rotation field
    normal_smooth_scale: float = 0.08  # correlation length of that field / long side
    normal_pixel_deg: float = 0.0  # rms angle of per-pixel normal noise
    outlier_fraction: float = 0.0  # fraction of valid pixels given uniform random values
    # Errors beyond a smooth warp (sample_scenes.realistic_errors); need object labels.
    object_offset_std: float = 0.0  # rms log-depth offset of each object (not the shell)
    far_compression: float = 0.0  # beyond the median depth m: z -> m (z / m)^(1 - this)
    flying_width: float = 0.0  # band at occlusion edges with bleeding/flying pixels / long side
    shell_drift: float = 0.0  # log-depth drift on the shell per long side away from objects

    @property
    def needs_labels(self) -> bool:
        return self.object_offset_std > 0 or self.shell_drift > 0


ORACLE = SimulationParams(name="oracle")
LOTUS_LIKE = SimulationParams(
    name="lotus_like",
    warp_std=0.07,
    pixel_noise=0.01,
    edge_blur=0.004,
    normal_smooth_deg=9.0,
    normal_pixel_deg=4.0,
)
# Named error kinds (`python -m sample_scenes simulate --error KIND`, bench rows). "moderate"
# and "hard" are smooth warps plus noise; the next four add one error a smooth warp cannot
# express to "moderate"; "mix" has all of them at once.
ERROR_KINDS: dict[str, SimulationParams] = {
    "oracle": ORACLE,
    "moderate": replace(LOTUS_LIKE, name="moderate"),
    "hard": SimulationParams(
        name="hard",
        warp_std=0.12,
        warp_bumps=5,
        pixel_noise=0.02,
        edge_blur=0.008,
        normal_smooth_deg=14.0,
        normal_pixel_deg=6.0,
        outlier_fraction=0.01,
    ),
    "objects": replace(LOTUS_LIKE, name="objects", object_offset_std=0.08),
    "far": replace(LOTUS_LIKE, name="far", far_compression=0.3),
    "edges": replace(LOTUS_LIKE, name="edges", flying_width=0.006),
    "drift": replace(LOTUS_LIKE, name="drift", shell_drift=0.25),
    "mix": replace(
        LOTUS_LIKE,
        name="mix",
        object_offset_std=0.06,
        far_compression=0.25,
        flying_width=0.004,
        shell_drift=0.2,
    ),
}


def simulate_prediction(
    depth: np.ndarray,
    normal: np.ndarray,
    space: DepthSpace,
    rng: np.random.Generator,
    params: SimulationParams = LOTUS_LIKE,
    labels: np.ndarray | None = None,
) -> MonoPrediction:
    """A simulated monocular prediction from ground truth.

    depth: (H, W) z-depth in metres, <= 0 or non-finite where unknown.
    normal: (H, W, 3) unit normals, OpenCV camera frame.
    labels: (H, W) int object labels (`realistic_errors.object_labels`), needed by the
    per-object offsets and the shell drift (`params.needs_labels`).
    Returns values (H, W) float32 affine in depth (space "depth") or in 1 / depth ("disparity"),
    NaN where depth is unknown; normal (H, W, 3) float32 unit, OpenCV camera frame, zero where
    unknown; confidence (H, W) float32 in [0, 1], lower near depth edges, 0 where unknown.
    """
    if space not in DEPTH_SPACES:
        raise ValueError(f"space must be one of {DEPTH_SPACES}, got {space!r}")
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    long_side = max(depth.shape)
    sigma = params.edge_blur * long_side
    z = _masked_blur(np.where(valid, depth, 0.0), valid, sigma)
    if params.needs_labels:
        if labels is None:
            raise ValueError(f"error kind {params.name!r} needs object labels")
        z = realistic.object_offsets(z, labels, rng, params.object_offset_std)
        z = realistic.shell_drift(z, labels, rng, params.shell_drift)
    z = realistic.compress_far(z, valid, params.far_compression)
    z = z * np.exp(_smooth_warp(depth.shape, rng, params))
    if params.pixel_noise > 0:
        z = z * np.exp(params.pixel_noise * rng.standard_normal(depth.shape))
    z = realistic.flying_pixels(z, valid, rng, round(params.flying_width * long_side))
    target = z if space == "depth" else 1.0 / np.where(valid, z, 1.0)
    values = _random_affine(target, valid, rng, params)
    values = _add_outliers(values, valid, rng, params.outlier_fraction)
    values = np.where(valid, values, np.nan).astype(np.float32)
    normal_out = _perturb_normals(np.asarray(normal, np.float64), valid, rng, params, sigma)
    return MonoPrediction(
        values=values,
        space=space,
        normal=normal_out,
        confidence=edge_confidence(depth, valid, max(2.0, 3.0 * sigma)),
        producer=f"simulated:{params.name}",
    )


def _masked_blur(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over valid pixels only (normalised convolution); invalid pixels keep x."""
    if sigma <= 0:
        return x.copy()
    num = ndimage.gaussian_filter(np.where(valid, x, 0.0), sigma, mode="nearest")
    den = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="nearest")
    return np.where(valid & (den > 1e-6), num / np.maximum(den, 1e-6), x)


def _smooth_warp(
    shape: tuple[int, int], rng: np.random.Generator, p: SimulationParams
) -> np.ndarray:
    """(H, W) smooth log-depth warp with rms p.warp_std: random quadratic plus wide bumps."""
    if p.warp_std <= 0:
        return np.zeros(shape)
    h, w = shape
    s = max(h, w)
    y, x = np.meshgrid(
        (np.arange(h) + 0.5 - h / 2) / s * 2, (np.arange(w) + 0.5 - w / 2) / s * 2, indexing="ij"
    )
    terms = [x, y, x * x, x * y, y * y]
    field = sum(rng.standard_normal() * t for t in terms)
    for _ in range(p.warp_bumps):
        cx, cy = rng.uniform(-1, 1, size=2)
        width = rng.uniform(0.3, 0.7)
        field = field + rng.standard_normal() * np.exp(
            -((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2)
        )
    field = field - field.mean()
    return field * (p.warp_std / max(float(field.std()), 1e-12))


def _random_affine(
    target: np.ndarray, valid: np.ndarray, rng: np.random.Generator, p: SimulationParams
) -> np.ndarray:
    """Normalise target to [0, 1] over valid pixels, then a random scale and shift (all affine)."""
    if not valid.any():
        return np.full(target.shape, np.nan)
    lo, hi = float(target[valid].min()), float(target[valid].max())
    base = (target - lo) / max(hi - lo, 1e-12)
    scale = float(np.exp(rng.uniform(np.log(p.scale_range[0]), np.log(p.scale_range[1]))))
    shift = float(rng.uniform(*p.shift_range))
    return scale * (base + shift)


def _add_outliers(
    values: np.ndarray, valid: np.ndarray, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """Replace a random `fraction` of valid pixels by uniform values over the valid range."""
    if fraction <= 0 or not valid.any():
        return values
    idx = np.flatnonzero(valid)
    pick = rng.choice(idx, size=int(round(fraction * len(idx))), replace=False)
    lo, hi = float(values[valid].min()), float(values[valid].max())
    out = values.copy()
    out.flat[pick] = rng.uniform(lo, hi, size=len(pick))
    return out


def _perturb_normals(
    normal: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    p: SimulationParams,
    sigma: float,
) -> np.ndarray:
    """(H, W, 3) float32 unit normals: blurred, smoothly rotated, per-pixel noise; 0 if invalid."""
    n = np.stack([_masked_blur(normal[..., c], valid, sigma) for c in range(3)], axis=-1)
    n = _unit(n)
    if p.normal_smooth_deg > 0:
        corr = p.normal_smooth_scale * max(normal.shape[:2])
        field = np.stack([_smooth_noise(normal.shape[:2], corr, rng) for _ in range(3)], -1)
        n = _tilt(n, field, p.normal_smooth_deg)
    if p.normal_pixel_deg > 0:
        n = _tilt(n, rng.standard_normal(normal.shape), p.normal_pixel_deg)
    return np.where(valid[..., None], n, 0.0).astype(np.float32)


def _smooth_noise(shape: tuple[int, int], corr: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-rms Gaussian-filtered white noise with correlation length `corr` pixels."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), corr, mode="wrap")
    return noise / max(float(noise.std()), 1e-12)


def _tilt(n: np.ndarray, field: np.ndarray, rms_deg: float) -> np.ndarray:
    """Tilt unit normals by the part of `field` (unit rms per component) orthogonal to them,
    scaled so the rms tilt angle is about `rms_deg`."""
    perp = field - np.sum(field * n, axis=-1, keepdims=True) * n  # two components: rms sqrt(2)
    return _unit(n + perp * (np.tan(np.deg2rad(rms_deg)) / np.sqrt(2.0)))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, v / np.maximum(norm, 1e-12), 0.0)


def edge_confidence(depth: np.ndarray, valid: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) float32 confidence: 1 far from depth discontinuities, down to 0.1 on them, 0 where
    depth is unknown. `radius` (pixels) is how far the dip reaches."""
    z = np.where(valid, depth, np.inf)
    edge = np.zeros(depth.shape, dtype=bool)
    for axis in (0, 1):
        a = np.take(z, range(z.shape[axis] - 1), axis=axis)
        b = np.take(z, range(1, z.shape[axis]), axis=axis)
        with np.errstate(invalid="ignore"):
            jump = np.abs(a - b) > EDGE_STEP * np.minimum(a, b)
        jump |= np.isinf(a) != np.isinf(b)  # the border of the known region is an edge too
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        edge |= np.pad(jump, pad)
        pad[axis] = (1, 0)
        edge |= np.pad(jump, pad)
    dist = ndimage.distance_transform_edt(~edge) if edge.any() else np.full(depth.shape, np.inf)
    conf = 1.0 - 0.9 * np.exp(-0.5 * (dist / radius) ** 2)
    return np.where(valid, conf, 0.0).astype(np.float32)


def affine_fit_errors(pred: MonoPrediction, depth: np.ndarray, normal: np.ndarray) -> dict:
    """Errors of a prediction after a per-view global least-squares affine fit to ground truth.

    The fit is in the prediction's space (depth: z ~ s v + t; disparity: 1/z ~ s v + t) over
    pixels with known depth and value. Returns abs_rel (mean |z_fit - z| / z), normal_deg (mean
    angle between predicted and true normals, degrees), scale, shift and rmse_fit (residual of
    the fit in the prediction's space).
    """
    depth = np.asarray(depth, dtype=np.float64)
    v = np.asarray(pred.values, dtype=np.float64)
    ok = np.isfinite(depth) & (depth > 0) & np.isfinite(v)
    target = depth[ok] if pred.space == "depth" else 1.0 / depth[ok]
    A = np.column_stack([v[ok], np.ones(ok.sum())])
    (scale, shift), *_ = np.linalg.lstsq(A, target, rcond=None)
    fitted = scale * v[ok] + shift
    z = fitted if pred.space == "depth" else 1.0 / np.where(fitted > 0, fitted, np.nan)
    rel = np.abs(z - depth[ok]) / depth[ok]
    out = {
        "abs_rel": float(np.nanmean(np.where(np.isfinite(rel), rel, 1.0))),
        "scale": float(scale),
        "shift": float(shift),
        "rmse_fit": float(np.sqrt(np.mean((fitted - target) ** 2))),
        "normal_deg": float("nan"),
    }
    if pred.normal is not None:
        dots = np.sum(pred.normal[ok].astype(np.float64) * normal[ok], axis=-1)
        out["normal_deg"] = float(np.degrees(np.arccos(np.clip(dots, -1.0, 1.0))).mean())
    return out


def write_predictions(
    scene_dir: str | Path,
    out_dir: str | Path,
    space: DepthSpace = "disparity",
    seed: int = 0,
    params: SimulationParams = LOTUS_LIKE,
) -> Path:
    """Write one `out_dir/<image stem>.npz` per image of a generated scene (the format read by
    `pipelines.predictors.FilePredictor`): values (H, W) float32, space 0-d str, normal (H, W, 3)
    float32, normal_convention "opencv", confidence (H, W) float32. The arrays are the same for
    the same seed. Returns out_dir."""
    from sample_scenes.scene import load_scene, render_ground_truth

    scene = load_scene(scene_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(scene.names):
        depth, normal = render_ground_truth(scene, name)
        labels = realistic.object_labels(scene, name) if params.needs_labels else None
        pred = simulate_prediction(
            depth, normal, space, np.random.default_rng([seed, index]), params, labels
        )
        write_npz(
            out / (str(Path(name).with_suffix("")) + ".npz"),
            values=pred.values,
            space=np.array(space),
            normal=pred.normal,
            normal_convention=np.array("opencv"),
            confidence=pred.confidence,
        )
    return out
