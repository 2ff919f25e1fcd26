"""Colourised previews of depth, normals and confidence for people (PNG, no matplotlib).

depth       -> Turbo colormap of inverse depth, normalised to the 2nd-98th percentile of the
               valid pixels (near = red, far = blue); unknown depth is black.
normal      -> RGB = (n' + 1) / 2 with n' the camera-frame normal in OpenGL axes (x right,
               y up, z toward the viewer): the usual normal-map look (a wall facing the camera
               is lavender-blue (128, 128, 255), a floor seen from above is green); unknown black.
confidence  -> Viridis over [0, 1] (dark purple = 0, yellow = 1).

The colormaps are small numpy lookup tables: Turbo from its published polynomial
approximation (Google AI blog, 2019), with its end colours pinned to the reference table's
(the polynomial drifts there), Viridis by linear
interpolation of matplotlib's values at 11 evenly spaced stops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.atomic import write_with

_TURBO_COEFFS = np.array(
    [
        # 1, x, x^2, x^3, x^4, x^5 for red, green, blue
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)
_VIRIDIS_STOPS = np.array(
    [
        [0.267004, 0.004874, 0.329415],
        [0.282623, 0.140926, 0.457517],
        [0.253935, 0.265254, 0.529983],
        [0.206756, 0.371758, 0.553117],
        [0.163625, 0.471133, 0.558148],
        [0.127568, 0.566949, 0.550556],
        [0.134692, 0.658636, 0.517649],
        [0.266941, 0.748751, 0.440573],
        [0.477504, 0.821444, 0.318195],
        [0.741388, 0.873449, 0.149561],
        [0.993248, 0.906157, 0.143936],
    ]
)


_TURBO_ENDS = np.array([[0.18995, 0.07176, 0.23217], [0.47960, 0.01583, 0.01055]])


def _turbo_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    powers = np.stack([x**k for k in range(6)], axis=0)  # (6, 256)
    rgb = (_TURBO_COEFFS @ powers).T
    # The polynomial drifts at the very ends; pull them onto Turbo's end colours with
    # corrections that fade out within the first and last ~15 % of the range.
    start, end = _TURBO_ENDS - rgb[[0, -1]]
    rgb += ((1 - x) ** 12)[:, None] * start + (x**12)[:, None] * end
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def _viridis_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    stops = np.linspace(0.0, 1.0, len(_VIRIDIS_STOPS))
    rgb = np.stack([np.interp(x, stops, _VIRIDIS_STOPS[:, c]) for c in range(3)], axis=1)
    return np.round(rgb * 255).astype(np.uint8)


TURBO = _turbo_lut()  # (256, 3) uint8
VIRIDIS = _viridis_lut()  # (256, 3) uint8
COLORMAPS = {"turbo": TURBO, "viridis": VIRIDIS}


def apply_colormap(
    values: np.ndarray, lut: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 through a (256, 3) LUT; invalid -> black."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    out = lut[np.round(v * 255).astype(np.int64)]
    if valid is not None:
        out[~valid] = 0
    return out


def colorize_depth(depth: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """(H, W) z-depth (0/NaN unknown) -> (H, W, 3) uint8 Turbo of inverse depth."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((*depth.shape, 3), np.uint8)
    if not valid.any():
        return out
    inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), np.nan)
    lo, hi = np.nanpercentile(inv, percentiles)
    scaled = (inv - lo) / max(hi - lo, 1e-12)
    return apply_colormap(scaled, TURBO, valid)


def colorize_normal(normal: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals, OpenCV camera frame -> (H, W, 3) uint8 normal-map colours."""
    n = np.nan_to_num(np.asarray(normal, dtype=np.float64))
    valid = np.linalg.norm(n, axis=-1) > 0.5
    display = n * np.array([1.0, -1.0, -1.0])  # OpenCV -> OpenGL axes
    out = np.round((display + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def colorize_confidence(confidence: np.ndarray) -> np.ndarray:
    """(H, W) confidence in [0, 1] -> (H, W, 3) uint8 Viridis (NaN -> black)."""
    conf = np.asarray(confidence, dtype=np.float64)
    return apply_colormap(conf, VIRIDIS, np.isfinite(conf))


def write_rgb_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Atomic PNG of an (H, W, 3) uint8 image."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    write_with(path, lambda tmp: image.save(tmp, format="PNG"))
    return Path(path)


def write_previews(
    out_dir: str | Path,
    stem: str,
    depth: np.ndarray | None = None,
    normal: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> list[Path]:
    """Write {stem}_depth.png, {stem}_normal.png, {stem}_confidence.png for what is given."""
    out_dir = Path(out_dir)
    written = []
    if depth is not None:
        written.append(write_rgb_png(out_dir / f"{stem}_depth.png", colorize_depth(depth)))
    if normal is not None:
        written.append(write_rgb_png(out_dir / f"{stem}_normal.png", colorize_normal(normal)))
    if confidence is not None:
        path = out_dir / f"{stem}_confidence.png"
        written.append(write_rgb_png(path, colorize_confidence(confidence)))
    return written
