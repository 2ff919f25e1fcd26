"""Photo folder intake: find images, decode them safely, and write normalised copies.

Every later stage (SfM, prediction, fusion, export) reads the normalised copies, so EXIF
orientation, 16-bit, RGBA, grayscale and CMYK are handled once, here. A file that cannot be
used is skipped and reported with the reason and the fix; it never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from recon.atomic import TEMP_MARKER, write_with
from recon.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif"
)  # fmt: skip
# Formats that SfM reads directly; anything else is re-encoded to PNG.
PASSTHROUGH_EXTENSIONS = (".jpg", ".jpeg", ".png")
MIN_IMAGE_SIDE = 64  # pixels; smaller images carry too few features and too little depth detail
# PIL refuses images above ~179 MP as a decompression bomb; we decode bounded sizes ourselves.
Image.MAX_IMAGE_PIXELS = 400_000_000


def _register_heif() -> None:
    """Let PIL open HEIC/HEIF (phone photos) through pillow-heif, a core dependency; without
    it those files are skipped with the fix named."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


_register_heif()


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


def list_images(
    root: str | Path, exclude: str | Path | None = None
) -> tuple[list[str], list[SkippedImage]]:
    """Relative names of candidate images under `root` (recursive, sorted).

    Symlinked folders are followed (each real folder once, so a link loop ends). Hidden files
    and folders (leading '.'), our own temp files and the folder `exclude` (the run's output
    folder, when it lies inside `root`) are ignored silently; everything else that is not an
    image file (other files, broken links, pipes, folders named like images, link loops) is
    reported as skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "photo folder not found", path=root, fix="pass an existing folder of photos"
        )
    excluded = Path(exclude).resolve() if exclude is not None else None
    names: list[str] = []
    skipped: list[SkippedImage] = []
    seen: set[tuple[int, int]] = set()
    stack = [(root, Path())]
    while stack:
        folder, rel_folder = stack.pop()
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            skipped.append(_skip(rel_folder, "a link to a folder already read (a loop or a "
                                 "second link)", "remove the link"))  # fmt: skip
            continue
        seen.add((info.st_dev, info.st_ino))
        for path in sorted(folder.iterdir()):
            rel = rel_folder / path.name
            if path.name.startswith(".") or TEMP_MARKER in path.name:
                continue
            if excluded is not None and path.resolve() == excluded:
                continue  # our own outputs (undistorted copies) are never photos
            kind = _entry_kind(path)
            if kind == "folder":
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    skipped.append(_skip(rel, "a folder named like an image",
                                         "rename it; its photos are read"))  # fmt: skip
                stack.append((path, rel))
            elif kind != "file":
                skipped.append(_skip(rel, kind, "replace it with the photo or remove it"))
            elif path.suffix.lower() in IMAGE_EXTENSIONS:
                names.append(rel.as_posix())
            else:
                skipped.append(_skip(rel, f"unsupported file type '{path.suffix or '(none)'}'",
                                     f"convert to one of {', '.join(IMAGE_EXTENSIONS)} "
                                     "or move it out"))  # fmt: skip
    return sorted(names), sorted(skipped, key=lambda x: x.name)


def _skip(rel: Path, reason: str, fix: str) -> SkippedImage:
    return SkippedImage(rel.as_posix(), f"{reason} — fix: {fix}")


def _entry_kind(path: Path) -> str:
    """'file', 'folder', or why the entry is neither (a broken link, a pipe, ...)."""
    try:
        mode = path.stat().st_mode  # follows links
    except OSError as exc:
        if path.is_symlink():
            return "broken symbolic link (its target is missing)"
        return f"unreadable ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    return "a device, not a file"


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image to (H, W, 3) uint8 RGB with EXIF orientation applied.

    Raises InputError (one line, names the file) for corrupt, truncated or empty files.
    """
    return decode_image(path)[0]


def decode_image(
    path: str | Path, max_size: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 RGB (EXIF orientation applied) and the photo's full (width, height) px.

    With `max_size`, a JPEG much larger than that is decoded at a reduced scale (1/2, 1/4 or
    1/8, never below the target size), so an 8000x6000 photo costs a fraction of its 144 MB;
    the caller still resizes the result to the exact target. Raises InputError (one line,
    names the file) for corrupt, truncated or empty files.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                full = img.size
                if max_size is not None and max(full) > max_size:
                    factor = max_size / max(full)
                    img.draft("RGB", (math.ceil(full[0] * factor), math.ceil(full[1] * factor)))
                img.load()  # forces a full decode: truncated files fail here
                transposed = ImageOps.exif_transpose(img)
                swapped = transposed.size != img.size and transposed.size == img.size[::-1]
                return to_rgb8(transposed), (full[::-1] if swapped else full)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"cannot decode image ({type(exc).__name__}: {exc})".replace("\n", " "),
            path=path,
            fix=_decode_fix(path),
        ) from exc


def _decode_fix(path: Path) -> str:
    if path.suffix.lower() in (".heic", ".heif") and "pillow_heif" not in sys.modules:
        return "pip install pillow-heif (HEIC/HEIF support), or re-export the photo as JPEG"
    return "re-export the photo as JPEG or PNG, or remove it"


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
    """True unless the file is a plain 8-bit RGB JPEG/PNG, as its extension says, unrotated."""
    if path.suffix.lower() not in PASSTHROUGH_EXTENSIONS:
        return True
    expected = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with Image.open(path) as img:
        orientation = img.getexif().get(0x0112, 1)
        # A PNG named .jpg (or the reverse) is re-encoded: SfM readers may trust the extension.
        return img.mode != "RGB" or orientation not in (0, 1) or img.format != expected


def normalized_name(name: str) -> str:
    """Name of the normalised copy: extension kept for JPEG/PNG, else '.png' appended."""
    return name if Path(name).suffix.lower() in PASSTHROUGH_EXTENSIONS else name + ".png"


def source_stem(name: str) -> str:
    """The photo's relative name without extension, from its normalised name or its own.

    'a/0004.tif.png' (a re-encoded TIFF) and 'a/0004.tif' both give 'a/0004': per-image files
    (predictions) are named after the photo, whatever the intake did to it.
    """
    path = Path(name)
    if path.suffix.lower() == ".png" and path.with_suffix("").suffix.lower() in IMAGE_EXTENSIONS:
        path = path.with_suffix("")
    return path.with_suffix("").as_posix()


def normalize_image(src: Path, dst: Path, max_size: int) -> tuple[tuple[int, int], float]:
    """Write the SfM-ready copy of `src` at `dst` (atomic). Returns ((w, h), downscale factor)."""
    rgb, (w, h) = decode_image(src, max_size)
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image is {w}x{h} px, smaller than {MIN_IMAGE_SIDE} px on a side",
            path=src,
            fix="use the full-resolution photo or remove it",
        )
    factor = min(1.0, max_size / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        # From the full-size or the reduced-scale decode alike: same target size.
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


def finished_copy(src: Path, dst: Path, max_size: int) -> tuple[tuple[int, int], float]:
    """What `normalize_image` returned for a copy an interrupted run already wrote (atomic,
    so a file under the final name is complete): ((w, h) of `dst`, downscale factor)."""
    with Image.open(dst) as img:
        size = img.size
    with Image.open(src) as img:
        factor = min(1.0, max_size / max(img.size))  # orientation does not change the long side
    return size, factor


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


def check_stem_clashes(names: list[str]) -> tuple[list[str], list[SkippedImage]]:
    """Skip photos whose name equals an earlier one up to the extension (a.jpg, a.png).

    Per-image files are named after the photo without its extension, so both would read and
    write the same prediction file.
    """
    seen: dict[str, str] = {}
    kept, skipped = [], []
    for name in names:
        stem = source_stem(name)
        if stem in seen:
            skipped.append(
                SkippedImage(
                    name, f"same name as {seen[stem]} up to the extension — fix: rename one"
                )
            )
        else:
            seen[stem] = name
            kept.append(name)
    return kept, skipped


def file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def check_duplicates(root: Path, names: list[str]) -> tuple[list[str], list[SkippedImage]]:
    """Drop byte-identical duplicates: they add no views, only cost.

    Of each group the shortest name is kept (then the first in order): a copy's name is
    usually the original's plus a suffix ('IMG_1 copy.jpg' sorts before 'IMG_1.jpg').
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(file_digest(root / name), []).append(name)
    keep = {min(group, key=lambda n: (len(n), n)): group for group in groups.values()}
    original = {n: k for k, group in keep.items() for n in group}
    kept = [n for n in names if n in keep]
    skipped = [
        SkippedImage(n, f"duplicate of {original[n]} — fix: remove one copy")
        for n in names
        if n not in keep
    ]
    return kept, skipped
