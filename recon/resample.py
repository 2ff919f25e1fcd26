"""Resizing of per-pixel maps to an image's resolution (NaN-aware, unit-normal aware)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_map(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of an (h, w) float map to (height, width), pixel centres aligned.

    NaN pixels stay unknown: a target pixel is NaN when it draws on any NaN source pixel.
    """
    values = np.asarray(values, dtype=np.float32)
    h, w = values.shape
    if (h, w) == (height, width):
        return values.copy()
    # Pixel-centre alignment: target centre (j + 0.5) maps to source (j + 0.5) * w / width.
    ys = (np.arange(height) + 0.5) * (h / height) - 0.5
    xs = (np.arange(width) + 0.5) * (w / width) - 0.5
    grid = np.meshgrid(ys, xs, indexing="ij")
    invalid = ~np.isfinite(values)
    filled = np.where(invalid, 0.0, values)
    out = ndimage.map_coordinates(filled, grid, order=1, mode="nearest")
    if invalid.any():
        bad = ndimage.map_coordinates(invalid.astype(np.float32), grid, order=1, mode="nearest")
        out[bad > 1e-6] = np.nan
    return out.astype(np.float32)


def remap_map(values: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (h, w) map at (H, W, 2) COLMAP-convention coordinates (u, v).

    Samples outside the map, or touching a NaN pixel, are NaN.
    """
    values = np.asarray(values, dtype=np.float32)
    h, w = values.shape
    coords = [uv[..., 1] - 0.5, uv[..., 0] - 0.5]  # (row, col) of pixel centres
    invalid = ~np.isfinite(values)
    out = ndimage.map_coordinates(np.where(invalid, 0, values), coords, order=1, mode="nearest")
    outside = (
        (coords[0] < -0.5) | (coords[0] > h - 0.5) | (coords[1] < -0.5) | (coords[1] > w - 0.5)
    )
    out[outside] = np.nan
    if invalid.any():
        bad = ndimage.map_coordinates(invalid.astype(np.float32), coords, order=1, mode="nearest")
        out[bad > 1e-6] = np.nan
    return out.astype(np.float32)


def resize_normals(normal: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (h, w, 3) normal map and renormalise to unit length (zero stays zero)."""
    channels = [resize_map(normal[..., c], width, height) for c in range(3)]
    out = np.stack(channels, axis=-1)
    return normalize(out)


def normalize(vectors: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Unit-normalise along the last axis; near-zero vectors become zero."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norm > eps, vectors / np.maximum(norm, eps), 0.0).astype(np.float32)
