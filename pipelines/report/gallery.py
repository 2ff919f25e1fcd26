"""The gallery: one row per view of small JPEG thumbnails, as data URIs.

photo | depth (aligned, Turbo of inverse depth) | normals | confidence | the view's sparse
points drawn on the photo, coloured by how far the aligned depth is from each point's SfM
depth (relative error |d - z| / z; Turbo, 0 = blue, >= RESIDUAL_CAP = red).
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from pipelines.report.collect import RunData, view_npz
from recon.preview import TURBO, colorize_confidence, colorize_depth, colorize_normal

log = logging.getLogger(__name__)

THUMB_WIDTH = 200  # px; 5 thumbnails per row stay readable side by side on a laptop
RESIDUAL_CAP = 0.10  # relative depth error shown as the top colour


@dataclass
class GalleryRow:
    name: str
    images: dict[str, str | None]  # column -> data URI (None: not available for this view)
    alignment: dict = field(default_factory=dict)  # the view's Alignment summary
    point_residuals: np.ndarray | None = None  # (N,) relative errors of its sparse points


COLUMNS = ("photo", "depth", "normals", "confidence", "sparse")


def data_uri(rgb: np.ndarray, quality: int = 80) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buf, format="JPEG", quality=quality
    )
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumb(rgb: np.ndarray, width: int = THUMB_WIDTH, nearest: bool = False) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to `width` px wide, keeping the aspect ratio."""
    h, w = rgb.shape[:2]
    size = (width, max(1, round(h * width / w)))
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, resample))


def shrink(arr: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """Nearest-neighbour subsample of an (H, W, ...) map to `width` columns (before colouring,
    so the colour maps run on thumbnails, not full maps)."""
    h, w = arr.shape[:2]
    if w <= width:
        return arr
    height = max(1, round(h * width / w))
    rows = ((np.arange(height) + 0.5) * h / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * w / width).astype(np.int64)
    return arr[rows][:, cols]


def _depth_for_display(aligned: dict, predicted: dict) -> np.ndarray | None:
    """Aligned metric depth when the view was aligned, else the raw prediction as depth."""
    if "depth" in aligned:
        return aligned["depth"]
    if "values" not in predicted:
        return None
    values = predicted["values"].astype(np.float64)
    if str(predicted.get("space", "depth")) == "disparity":
        with np.errstate(divide="ignore"):
            return np.where(values > 0, 1.0 / values, 0.0)
    return values


def point_residuals(depth: np.ndarray, uv: np.ndarray, z: np.ndarray, size: tuple[int, int]):
    """Relative error |depth(uv) - z| / z of sparse points (uv px at image `size` = (W, H));
    NaN where the depth map has no value. depth may be at another resolution."""
    h, w = depth.shape
    cols = np.clip((uv[:, 0] * w / size[0]).astype(np.int64), 0, w - 1)
    rows = np.clip((uv[:, 1] * h / size[1]).astype(np.int64), 0, h - 1)
    d = depth[rows, cols].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, np.abs(d - z) / z, np.nan)


def sparse_overlay(photo: np.ndarray, uv: np.ndarray, residual: np.ndarray, scale: float):
    """Photo thumbnail with each sparse point as a dot coloured by its residual."""
    image = Image.fromarray(np.ascontiguousarray(photo))
    draw = ImageDraw.Draw(image)
    level = np.clip(np.nan_to_num(residual, nan=1.0) / RESIDUAL_CAP, 0, 1)
    colors = TURBO[np.round(level * 255).astype(np.int64)]
    for (u, v), c, r in zip(uv * scale, colors, residual):
        fill = (128, 128, 128) if not np.isfinite(r) else tuple(int(x) for x in c)
        draw.ellipse((u - 1.5, v - 1.5, u + 1.5, v + 1.5), fill=fill)
    return np.asarray(image)


def gallery_row(run: RunData, name: str, sparse) -> GalleryRow:
    aligned, predicted = view_npz(run, "align", name), view_npz(run, "predict", name)
    alignment = run.report.get("alignment", {}).get(name, {})
    images: dict[str, str | None] = dict.fromkeys(COLUMNS)
    photo = _load_photo(run, name)
    depth = _depth_for_display(aligned, predicted)
    if photo is not None:
        images["photo"] = data_uri(thumb(photo))
    if depth is not None:
        images["depth"] = data_uri(thumb(colorize_depth(shrink(depth)), nearest=True))
    normal = aligned.get("normal", predicted.get("normal"))
    if normal is not None:
        images["normals"] = data_uri(thumb(colorize_normal(shrink(normal)), nearest=True))
    conf = aligned.get("confidence", predicted.get("confidence"))
    if conf is not None:
        images["confidence"] = data_uri(thumb(colorize_confidence(shrink(conf)), nearest=True))
    residuals = None
    obs = None if sparse is None else sparse.sparse.get(name)
    if photo is not None and obs is not None and "depth" in aligned and len(obs.uv):
        size = (photo.shape[1], photo.shape[0])
        residuals = point_residuals(aligned["depth"], obs.uv, obs.z, size)
        small = thumb(photo)
        overlay = sparse_overlay(small, obs.uv, residuals, small.shape[1] / size[0])
        images["sparse"] = data_uri(overlay)
    return GalleryRow(name, images, alignment, residuals)


def _load_photo(run: RunData, name: str) -> np.ndarray | None:
    if run.image_root is None or not (run.image_root / name).is_file():
        return None
    with Image.open(run.image_root / name) as im:
        return np.asarray(im.convert("RGB"))


def gallery(run: RunData, sparse) -> list[GalleryRow]:
    """One row per registered view, in name order."""
    return [gallery_row(run, name, sparse) for name in run.view_names]
