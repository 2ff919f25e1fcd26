"""Sparse optical flow (pyramidal Lucas-Kanade) and image sharpness, numpy + scipy only.

Used by frame selection (`recon.video`) to measure how far the image content moved between a
candidate frame and the last kept one (parallax proxy) and how sharp a frame is. Images here
are small greyscale float32 arrays (H, W) in [0, 1]; points are (N, 2) float64 (x, y) pixels
with the top-left pixel's centre at (0, 0) (array-index convention, internal to this module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PATCH_RADIUS = 6  # px; LK integration window is (2r+1)^2
LEVELS = 4  # pyramid levels: tracks displacements up to ~2^LEVELS * PATCH_RADIUS px
ITERATIONS = 5  # Gauss-Newton steps per level (sub-pixel accuracy is not needed here)
FB_TOLERANCE = 1.0  # px; forward-backward round trip error above this marks a track lost


@dataclass(frozen=True)
class FlowResult:
    """Sparse flow from image A to image B."""

    points: np.ndarray  # (N, 2) x, y px in A
    flow: np.ndarray  # (N, 2) displacement px (B position - A position)
    ok: np.ndarray  # (N,) bool, tracked and passed the forward-backward check

    @property
    def tracked_fraction(self) -> float:
        return float(self.ok.mean()) if len(self.ok) else 0.0

    def median_displacement(self) -> float:
        """Median length (px) of the good tracks' displacements; NaN without good tracks."""
        if not self.ok.any():
            return float("nan")
        return float(np.median(np.linalg.norm(self.flow[self.ok], axis=1)))


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a greyscale image (H, W): low for blurred frames."""
    return float(ndimage.laplace(grey.astype(np.float32)).var())


def good_features(grey: np.ndarray, grid: tuple[int, int] = (12, 9)) -> np.ndarray:
    """(N, 2) x, y corner points: the strongest Shi-Tomasi corner of each grid cell, where it is
    textured enough (min eigenvalue above 1% of the image's strongest). Spread over the image
    so one textured object cannot dominate the median displacement."""
    gx = ndimage.sobel(grey, axis=1)
    gy = ndimage.sobel(grey, axis=0)
    sxx = ndimage.gaussian_filter(gx * gx, 1.5)
    syy = ndimage.gaussian_filter(gy * gy, 1.5)
    sxy = ndimage.gaussian_filter(gx * gy, 1.5)
    score = 0.5 * (sxx + syy - np.sqrt((sxx - syy) ** 2 + 4 * sxy * sxy))
    h, w = grey.shape
    margin = PATCH_RADIUS + 2
    score[:margin], score[-margin:], score[:, :margin], score[:, -margin:] = 0, 0, 0, 0
    floor = 0.01 * float(score.max()) if score.size else 0.0
    points = []
    ys = np.linspace(0, h, grid[1] + 1).astype(int)
    xs = np.linspace(0, w, grid[0] + 1).astype(int)
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            cell = score[y0:y1, x0:x1]
            if cell.size == 0:
                continue
            k = int(np.argmax(cell))
            if cell.flat[k] > floor > 0:
                points.append((x0 + k % cell.shape[1], y0 + k // cell.shape[1]))
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _pyramid(grey: np.ndarray, levels: int) -> list[np.ndarray]:
    out = [grey.astype(np.float32)]
    for _ in range(levels - 1):
        prev = ndimage.gaussian_filter(out[-1], 1.0)[::2, ::2]
        if min(prev.shape) < 2 * PATCH_RADIUS + 4:
            break
        out.append(prev)
    return out


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `img` at (x, y) arrays of equal shape (edge values outside).
    Plain numpy indexing: several times faster than ndimage.map_coordinates here."""
    h, w = img.shape
    x = np.clip(x, 0, w - 1.001)  # callers pass finite coordinates
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    flat = img.ravel()
    i = y0 * w + x0
    top = flat[i] * (1 - fx) + flat[i + 1] * fx
    bottom = flat[i + w] * (1 - fx) + flat[i + w + 1] * fx
    return top * (1 - fy) + bottom * fy


def _lk(pyr_a: list[np.ndarray], pyr_b: list[np.ndarray], pts: np.ndarray) -> np.ndarray:
    """Track `pts` (N, 2) from A to B coarse to fine; returns their (N, 2) positions in B
    (NaN for points without texture to track)."""
    r = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1, dtype=np.float64)
    ox, oy = np.meshgrid(r, r)
    disp = np.zeros_like(pts)
    lost = np.zeros(len(pts), bool)
    for level in range(len(pyr_a) - 1, -1, -1):
        a, b = pyr_a[level], pyr_b[level]
        s = 2.0**level
        px = pts[:, 0, None, None] / s + ox
        py = pts[:, 1, None, None] / s + oy
        patch = _sample(a, px, py)
        grad_y, grad_x = np.gradient(a)
        ix, iy = _sample(grad_x, px, py), _sample(grad_y, px, py)
        gxx, gyy, gxy = (ix * ix).sum((1, 2)), (iy * iy).sum((1, 2)), (ix * iy).sum((1, 2))
        det = gxx * gyy - gxy * gxy
        flat = np.abs(det) < 1e-9  # untextured: the track is lost
        inv_det = np.where(flat, 0.0, 1.0 / np.where(flat, 1.0, det))  # no NaN in the loop
        d = disp / s
        for _ in range(ITERATIONS):
            err = patch - _sample(b, px + d[:, 0, None, None], py + d[:, 1, None, None])
            bx, by = (err * ix).sum((1, 2)), (err * iy).sum((1, 2))
            step = np.stack([(gyy * bx - gxy * by) * inv_det, (gxx * by - gxy * bx) * inv_det], 1)
            d = d + step
            if np.abs(step).max(initial=0.0) < 0.01:
                break
        lost |= flat
        disp = d * s
    out = pts + disp
    out[lost] = np.nan
    return out


def sparse_flow(a: np.ndarray, b: np.ndarray, points: np.ndarray | None = None) -> FlowResult:
    """Sparse flow from greyscale image `a` to `b` (equal (H, W)), with a forward-backward
    check: a track is kept when tracking it back from B lands within FB_TOLERANCE px."""
    pts = good_features(a) if points is None else np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return FlowResult(pts, np.zeros_like(pts), np.zeros(0, bool))
    pyr_a, pyr_b = _pyramid(a, LEVELS), _pyramid(b, LEVELS)
    fwd = _lk(pyr_a, pyr_b, pts)
    back = _lk(pyr_b, pyr_a, np.nan_to_num(fwd))
    h, w = a.shape
    inside = (fwd[:, 0] >= 0) & (fwd[:, 0] <= w - 1) & (fwd[:, 1] >= 0) & (fwd[:, 1] <= h - 1)
    with np.errstate(invalid="ignore"):
        ok = inside & (np.linalg.norm(back - pts, axis=1) < FB_TOLERANCE)
    ok &= np.isfinite(fwd).all(axis=1)
    return FlowResult(pts, np.nan_to_num(fwd - pts), ok)
