"""Training data: folders of photos with depth and normal maps, and the targets Lotus learns.

Folder layout (one sample per image stem; every image of a folder has the same size):

    ROOT/images/<stem>.jpg|.png   RGB photo
    ROOT/depth/<stem>.npy         (H, W) float32 z-depth, any unit; <= 0 or non-finite = unknown
    ROOT/normal/<stem>.npy        (H, W, 3) float32 unit normals, OpenCV camera frame
                                  (x right, y down, z forward); zero vector = unknown

Targets are in Lotus form, 3 channels in [-1, 1], as the VAE sees them:
- depth: per image, the 2nd..98th percentiles of depth (or disparity 1/z) mapped to [-1, 1]
  and clipped, repeated on 3 channels; unknown pixels are "far" (depth 1, disparity -1);
- normal: unit vectors in Lotus's (DSINE) convention, the negated OpenCV normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lotus_core.normals import opencv_to_lotus

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def normalise_depth(depth: np.ndarray, space: str, lo: float = 2.0, hi: float = 98.0) -> np.ndarray:
    """(H, W) z-depth -> (H, W) float32 in [-1, 1]: depth or disparity, percentiles lo..hi.

    Unknown pixels (<= 0, non-finite) become far: 1 in depth space, -1 in disparity space.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    far = 1.0 if space == "depth" else -1.0
    if valid.sum() < 2:
        return np.full(depth.shape, far, dtype=np.float32)
    values = depth if space == "depth" else 1.0 / np.where(valid, depth, 1.0)
    p_lo, p_hi = np.percentile(values[valid], [lo, hi])
    scaled = (values - p_lo) / max(p_hi - p_lo, 1e-8) * 2.0 - 1.0
    return np.where(valid, np.clip(scaled, -1.0, 1.0), far).astype(np.float32)


def lotus_normal(normal_opencv: np.ndarray) -> np.ndarray:
    """(H, W, 3) OpenCV normals -> (H, W, 3) float32 Lotus-convention unit normals (0 kept)."""
    n = np.asarray(normal_opencv, dtype=np.float32)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    unit = np.where(norm > 1e-6, n / np.maximum(norm, 1e-6), 0.0)
    return opencv_to_lotus(unit).astype(np.float32)


@dataclass(frozen=True)
class Sample:
    """One training sample as CHW float32 tensors in [-1, 1]."""

    image: torch.Tensor  # (3, H, W) RGB, x / 127.5 - 1 as the inference code
    depth: torch.Tensor  # (3, H, W) normalised depth or disparity, channels equal
    normal: torch.Tensor  # (3, H, W) Lotus-convention normals


def image_stems(root: Path) -> list[str]:
    """Sorted stems of the photos in ROOT/images that have both a depth and a normal map."""
    stems = []
    for path in sorted((root / "images").iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if (root / "depth" / f"{path.stem}.npy").is_file() and (
                root / "normal" / f"{path.stem}.npy"
            ).is_file():
                stems.append(path.stem)
    return stems


def _image_path(root: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = root / "images" / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no image for {stem} in {root / 'images'}")


def load_sample(root: Path, stem: str, space: str) -> Sample:
    """Read one sample and turn it into Lotus-form tensors."""
    with Image.open(_image_path(root, stem)) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    depth = normalise_depth(np.load(root / "depth" / f"{stem}.npy"), space)
    normal = lotus_normal(np.load(root / "normal" / f"{stem}.npy"))
    if depth.shape != rgb.shape[:2] or normal.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"{root}/{stem}: image, depth and normal sizes differ")
    return Sample(
        image=torch.from_numpy(rgb / 127.5 - 1.0).permute(2, 0, 1).contiguous(),
        depth=torch.from_numpy(depth)[None].expand(3, -1, -1).contiguous(),
        normal=torch.from_numpy(normal).permute(2, 0, 1).contiguous(),
    )


def load_dataset(roots: list[str] | list[Path], space: str) -> dict[str, torch.Tensor]:
    """Every sample of the folders stacked: {"image", "depth", "normal"} each (N, 3, H, W)."""
    samples = [load_sample(Path(r), s, space) for r in roots for s in image_stems(Path(r))]
    if not samples:
        raise ValueError(f"no samples (images + depth + normal) in {list(map(str, roots))}")
    sizes = {tuple(s.image.shape) for s in samples}
    if len(sizes) > 1:
        raise ValueError(f"all images must have the same size, found {sorted(sizes)}")
    return {k: torch.stack([getattr(s, k) for s in samples]) for k in ("image", "depth", "normal")}
