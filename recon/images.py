"""Photo folder intake: find images, decode them safely, and write normalised copies.

Every later stage (SfM, prediction, fusion, export) reads the normalised copies, so EXIF
orientation, 16-bit, RGBA, grayscale and CMYK are handled once, here. A file that cannot be
used is skipped and reported with the reason and the fix; it never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from recon.atomic import TEMP_MARKER, write_with
from recon.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
# Formats that SfM reads directly; anything else is re-encoded to PNG.
PASSTHROUGH_EXTENSIONS = (".jpg", ".jpeg", ".png")
MIN_IMAGE_SIDE = 64  # pixels; smaller images carry too few features and too little depth detail
# PIL refuses images above ~179 MP as a decompression bomb; we decode bounded sizes ourselves.
Image.MAX_IMAGE_PIXELS = 400_000_000


@dataclass(frozen=True)
class SkippedImage:
    name: str  # path relative to the image root
    reason: str  # one line: what is wrong and the fix


@dataclass
class ImageSet:
    """Normalised images ready for every stage."""

    root: Path  # folder of the normalised copies
    names: list[str]  # relative names, sorted; the frame keys
    source_names: dict[str, str] = field(default_factory=dict)  # name -> original relative path
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (width, height) px
    skipped: list[SkippedImage] = field(default_factory=list)
    downscaled: dict[str, float] = field(default_factory=dict)  # name -> factor applied (< 1)
    # name -> "WxH|make|model|focal": photos with equal signatures share one SfM camera
    devices: dict[str, str] = field(default_factory=dict)

    def single_device(self) -> bool:
        return len(set(self.devices.get(n, n) for n in self.names)) == 1


def list_images(root: str | Path) -> tuple[list[str], list[SkippedImage]]:
    """Relative names of candidate images under `root` (recursive, sorted).

    Hidden files and folders (leading '.') and our own temp files are ignored silently;
    other non-image files are reported as skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "photo folder not found", path=root, fix="pass an existing folder of photos"
        )
    names, skipped = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or TEMP_MARKER in path.name:
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            names.append(rel.as_posix())
        else:
            skipped.append(
                SkippedImage(
                    rel.as_posix(),
                    f"unsupported file type '{path.suffix or '(none)'}'; "
                    f"convert to one of {', '.join(IMAGE_EXTENSIONS)} or move it out",
                )
            )
    return names, skipped


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image to (H, W, 3) uint8 RGB with EXIF orientation applied.

    Raises InputError (one line, names the file) for corrupt, truncated or empty files.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # forces a full decode: truncated files fail here
                img = ImageOps.exif_transpose(img)
                return to_rgb8(img)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"cannot decode image ({type(exc).__name__}: {exc})".replace("\n", " "),
            path=path,
            fix="re-export the photo as JPEG or PNG, or remove it",
        ) from exc


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode (1, L, LA, P, RGBA, CMYK, I;16, I, F) to (H, W, 3) uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit depth grayscale: scale the full range to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(np.nanmax(arr)), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on mid-grey: transparent areas carry no texture either way.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def needs_reencode(path: Path) -> bool:
    """True unless the file is a plain 8-bit RGB JPEG/PNG with no EXIF rotation."""
    if path.suffix.lower() not in PASSTHROUGH_EXTENSIONS:
        return True
    with Image.open(path) as img:
        orientation = img.getexif().get(0x0112, 1)
        return img.mode != "RGB" or orientation not in (0, 1)


def normalized_name(name: str) -> str:
    """Name of the normalised copy: extension kept for JPEG/PNG, else '.png' appended."""
    return name if Path(name).suffix.lower() in PASSTHROUGH_EXTENSIONS else name + ".png"


def normalize_image(src: Path, dst: Path, max_size: int) -> tuple[tuple[int, int], float]:
    """Write the SfM-ready copy of `src` at `dst` (atomic). Returns ((w, h), downscale factor)."""
    rgb = load_rgb(src)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image is {w}x{h} px, smaller than {MIN_IMAGE_SIDE} px on a side",
            path=src,
            fix="use the full-resolution photo or remove it",
        )
    factor = min(1.0, max_size / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    elif not needs_reencode(src):
        write_with(dst, lambda tmp: tmp.write_bytes(src.read_bytes()))
        return (w, h), 1.0
    pil = Image.fromarray(rgb)
    if dst.suffix.lower() in (".jpg", ".jpeg"):
        write_with(dst, lambda tmp: pil.save(tmp, format="JPEG", quality=95))
    else:
        write_with(dst, lambda tmp: pil.save(tmp, format="PNG"))
    return (rgb.shape[1], rgb.shape[0]), factor


def device_signature(path: Path, size: tuple[int, int]) -> str:
    """Size plus EXIF make, model and focal length: equal for photos from one camera setting."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            sub = exif.get_ifd(0x8769)
            focal = sub.get(0x920A, exif.get(0x920A, ""))
            make, model = exif.get(0x010F, ""), exif.get(0x0110, "")
    except Exception:
        make = model = focal = ""
    return f"{size[0]}x{size[1]}|{make}|{model}|{focal}".strip()


def file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def check_duplicates(root: Path, names: list[str]) -> tuple[list[str], list[SkippedImage]]:
    """Drop byte-identical duplicates (keeping the first name): they add no views, only cost."""
    seen: dict[str, str] = {}
    kept, skipped = [], []
    for name in names:
        digest = file_digest(root / name)
        if digest in seen:
            skipped.append(SkippedImage(name, f"duplicate of {seen[digest]}; remove one copy"))
        else:
            seen[digest] = name
            kept.append(name)
    return kept, skipped
