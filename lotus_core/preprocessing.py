"""Image <-> model-input geometry: long-edge resize, pad to a multiple of 8, unpad, resize back.

All tensors are NCHW. Images enter as uint8 RGB (H, W, 3) numpy arrays and leave as float
tensors in [-1, 1] (the VAE's input range, `x / 127.5 - 1` as upstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lotus_core.errors import LotusInputError


@dataclass(frozen=True)
class Geometry:
    """How one input size maps to the model's input. Sizes in pixels, (height, width)."""

    input_hw: tuple[int, int]  # the caller's image
    resized_hw: tuple[int, int]  # after the long-edge resize (content of the padded canvas)
    padded_hw: tuple[int, int]  # multiple of `multiple`; padding is at the bottom and right

    @property
    def pad(self) -> tuple[int, int]:
        """(bottom, right) padding in pixels."""
        return self.padded_hw[0] - self.resized_hw[0], self.padded_hw[1] - self.resized_hw[1]


def plan_geometry(height: int, width: int, processing_res: int, multiple: int = 8) -> Geometry:
    """Long edge to `processing_res` (0: keep the size), then pad up to a multiple of `multiple`.

    The scaled size is floored like upstream's `resize_max_res` (and kept >= 1 pixel).
    """
    if processing_res < 0:
        raise LotusInputError(f"processing_res must be >= 0, got {processing_res}", fix="use 768")
    if processing_res > 0:
        scale = processing_res / max(height, width)
        rh, rw = max(1, int(height * scale)), max(1, int(width * scale))
    else:
        rh, rw = height, width
    ph, pw = -(-rh // multiple) * multiple, -(-rw // multiple) * multiple
    return Geometry(input_hw=(height, width), resized_hw=(rh, rw), padded_hw=(ph, pw))


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise unless every image is (H, W, 3) uint8."""
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise LotusInputError(
                f"image {i} must be (H, W, 3), got {shape}", fix="pass RGB arrays"
            )
        if image.dtype != np.uint8:
            raise LotusInputError(f"image {i} is {image.dtype}, not uint8", fix="pass 8-bit RGB")
        if min(image.shape[:2]) < 1:
            raise LotusInputError(f"image {i} is empty ({image.shape})", fix="drop it")


def to_model_input(images: Sequence[np.ndarray], geometry: Geometry) -> torch.Tensor:
    """(B, 3, Hp, Wp) float32 in [-1, 1] from equal-size uint8 (H, W, 3) images.

    Bilinear resize with antialiasing (upstream: torchvision `resize(..., antialias=True)`),
    then reflection padding at the bottom and right (replicate where the image is too small
    to reflect), so the border the VAE sees continues the image instead of a flat colour.
    """
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if geometry.resized_hw != geometry.input_hw:
        batch = F.interpolate(
            batch, size=geometry.resized_hw, mode="bilinear", align_corners=False, antialias=True
        )
    bottom, right = geometry.pad
    if bottom or right:
        h, w = geometry.resized_hw
        mode = "reflect" if bottom < h and right < w else "replicate"
        batch = F.pad(batch, (0, right, 0, bottom), mode=mode)
    return batch.contiguous()


def restore(maps: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Crop the padding and resize (B, C, Hp, Wp) maps back to the input size (B, C, H, W).

    Bilinear, antialiased when shrinking; float32 output. Unit vectors need renormalising after.
    """
    h, w = geometry.resized_hw
    maps = maps[:, :, :h, :w].float()
    if (h, w) != geometry.input_hw:
        shrink = geometry.input_hw[0] < h or geometry.input_hw[1] < w
        maps = F.interpolate(
            maps, size=geometry.input_hw, mode="bilinear", align_corners=False, antialias=shrink
        )
    return maps


def group_by_size(images: Sequence[np.ndarray], batch_size: int) -> list[list[int]]:
    """Indices of images grouped into batches of equal (H, W), at most `batch_size` each.

    Groups keep the input order within a size; sizes appear in order of first occurrence.
    """
    if batch_size < 1:
        raise LotusInputError(f"batch_size must be >= 1, got {batch_size}", fix="use 1 or more")
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(tuple(image.shape[:2]), []).append(i)
    batches = []
    for indices in by_size.values():
        batches += [indices[k : k + batch_size] for k in range(0, len(indices), batch_size)]
    return batches
