"""Stage 1: photo folder -> normalised images (EXIF-rotated, 8-bit RGB, bounded size)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.workspace import Stage
from recon.atomic import write_json
from recon.errors import InputError
from recon.images import (
    ImageSet,
    SkippedImage,
    check_duplicates,
    check_stem_clashes,
    device_signature,
    finished_copy,
    list_images,
    normalize_image,
    normalized_name,
)
from recon.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagesConfig:
    max_size: int = 2000  # px; longer edges are downscaled (with a warning) to bound memory
    drop_duplicates: bool = True  # byte-identical photos are skipped and reported

    def __post_init__(self) -> None:
        if self.max_size < 64:
            raise ValueError(f"images.max_size must be >= 64 px, got {self.max_size}")


def prepare_images(
    photo_dir: Path, stage: Stage, config: ImagesConfig, out_dir: Path | None = None
) -> ImageSet:
    """Normalise every usable photo into the stage folder; skip and report the rest.
    `out_dir`, the run's output folder, is never read as photos when it is inside photo_dir."""
    if stage.done:
        return load_image_set(stage)
    out = stage.begin()
    names, skipped = list_images(photo_dir, exclude=out_dir)
    names, clashes = check_stem_clashes(names)
    skipped += clashes
    if config.drop_duplicates:
        names, dup = check_duplicates(photo_dir, names)
        skipped += dup
    image_set = ImageSet(root=out / "images", names=[])
    for name in progress(names, desc="images", unit="img", leave=False):
        dst_name = normalized_name(name)
        dst = image_set.root / dst_name
        try:
            if dst.is_file():  # written by an interrupted run: keep it
                size, factor = finished_copy(photo_dir / name, dst, config.max_size)
            else:
                size, factor = normalize_image(photo_dir / name, dst, config.max_size)
        except InputError as err:
            skipped.append(SkippedImage(name, str(err)))
            continue
        if factor < 1.0:
            log.warning("%s: downscaled by %.3f to %dx%d px (images.max_size)", name, factor, *size)
            image_set.downscaled[dst_name] = factor
        image_set.names.append(dst_name)
        image_set.source_names[dst_name] = name
        image_set.sizes[dst_name] = size
        image_set.devices[dst_name] = device_signature(photo_dir / name, size)
    image_set.skipped = skipped
    for item in skipped:
        log.warning("skipped %s: %s", item.name, item.reason)
    if not image_set.names:
        raise InputError(
            "no usable images", path=photo_dir, fix="put JPEG or PNG photos of the scene in it"
        )
    write_json(out / "manifest.json", _manifest(image_set))
    stage.finish({"num_images": len(image_set.names), "num_skipped": len(skipped)})
    return image_set


def check_photo_folder(photo_dir: Path, out_dir: Path | None = None) -> None:
    """Fail at once (before models are resolved) on a missing folder or one with no file
    named like an image; decoding problems are found by `prepare_images`."""
    names, _ = list_images(photo_dir, exclude=out_dir)
    if not names:
        raise InputError(
            "no usable images", path=photo_dir, fix="put JPEG or PNG photos of the scene in it"
        )


def _manifest(image_set: ImageSet) -> dict:
    return {
        "names": image_set.names,
        "source_names": image_set.source_names,
        "sizes": image_set.sizes,
        "downscaled": image_set.downscaled,
        "devices": image_set.devices,
        "skipped": [{"name": s.name, "reason": s.reason} for s in image_set.skipped],
    }


def load_image_set(stage: Stage) -> ImageSet:
    data = json.loads((stage.path / "manifest.json").read_text())
    return ImageSet(
        root=stage.path / "images",
        names=list(data["names"]),
        source_names=dict(data["source_names"]),
        sizes={k: tuple(v) for k, v in data["sizes"].items()},
        skipped=[SkippedImage(s["name"], s["reason"]) for s in data["skipped"]],
        downscaled=dict(data["downscaled"]),
        devices=dict(data.get("devices", {})),
    )
