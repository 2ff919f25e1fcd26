"""Pinhole intrinsics for a single photo: an explicit K, a field of view, or the photo's EXIF.

Order of precedence (the first that applies wins; `IntrinsicsChoice.source` says which):
    1. an explicit K (`K=`), or fx/fy/cx/cy given by the user;
    2. a field of view given by the user (`fov_deg=`);
    3. EXIF 35 mm-equivalent focal length (tag FocalLengthIn35mmFilm, 0xA405);
    4. EXIF focal length (0x920A) with the focal-plane resolution (0xA20E/0xA20F/0xA210);
    5. EXIF focal length with a sensor size given by the user (`sensor_width_mm=`);
    6. the default field of view, `DEFAULT_FOV_DEG` = 60 degrees.

Field of view convention: `fov_deg` is the angle across the image's LONGER side (the horizontal
FOV of a landscape photo, the vertical FOV of a portrait one), so that turning the camera does
not change the focal length. A 60 degree default sits between a phone's main camera (about 69
degrees across the long side, 26 mm equivalent) and a "normal" 43 mm lens (about 45 degrees).

35 mm equivalent: by the CIPA/EXIF definition it matches the image diagonal to the 43.27 mm
diagonal of a 36 x 24 mm frame, so f_px = f35 * diagonal_px / 43.27 (identical to the long-side
rule for 3:2 images).

All results are for the image as displayed, i.e. after applying the EXIF orientation: an
orientation of 5-8 (rotated by 90 degrees) swaps width and height relative to the stored
pixels. The principal point is the image centre in COLMAP's pixel-centre convention:
(W / 2, H / 2).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import ExifTags, Image

from recon.errors import InputError
from recon.records import Camera

DEFAULT_FOV_DEG = 60.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm
PLAUSIBLE_FOV_DEG = (5.0, 170.0)  # EXIF values outside this range are ignored as corrupt

TAG_ORIENTATION = ExifTags.Base.Orientation.value  # 0x0112
TAG_FOCAL_35MM = ExifTags.Base.FocalLengthIn35mmFilm.value  # 0xA405
TAG_FOCAL_MM = ExifTags.Base.FocalLength.value  # 0x920A
TAG_FP_XRES = ExifTags.Base.FocalPlaneXResolution.value  # 0xA20E
TAG_FP_YRES = ExifTags.Base.FocalPlaneYResolution.value  # 0xA20F
TAG_FP_UNIT = ExifTags.Base.FocalPlaneResolutionUnit.value  # 0xA210
TAG_PIXEL_X = ExifTags.Base.ExifImageWidth.value  # 0xA002, PixelXDimension
TAG_PIXEL_Y = ExifTags.Base.ExifImageHeight.value  # 0xA003, PixelYDimension
# FocalPlaneResolutionUnit: 2 = inch, 3 = cm (EXIF 2.3), 4 = mm, 5 = um (EXIF 3.0 extensions)
_MM_PER_UNIT = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}


@dataclass(frozen=True)
class ExifCamera:
    """The EXIF fields that matter for intrinsics, with sizes for the displayed image."""

    width: int  # pixels, after EXIF orientation
    height: int  # pixels, after EXIF orientation
    orientation: int = 1  # EXIF orientation 1-8; 5-8 swap width and height
    focal_35mm: float | None = None  # mm, 35 mm-equivalent focal length
    focal_mm: float | None = None  # mm, physical focal length
    # pixels per mm on the sensor along the stored image's x / y axes, rescaled to the file's
    # pixel grid when the EXIF pixel dimensions differ (a resized photo)
    focal_plane_px_per_mm: tuple[float, float] | None = None
    make_model: str = ""


@dataclass(frozen=True)
class IntrinsicsChoice:
    """The chosen camera and how it was obtained (for the log)."""

    camera: Camera
    source: str  # explicit-K | fov | exif-35mm | exif-focal-plane | exif-sensor | default-fov
    message: str  # one line for the log, e.g. "EXIF 35 mm-equivalent focal 26 mm -> f = 3042 px"
    fov_deg: float  # resulting field of view across the longer side, degrees
    exif: ExifCamera | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)  # EXIF fields seen but not used, why


def camera_from_focal(width: int, height: int, focal_px: float) -> Camera:
    """Square-pixel pinhole camera with the principal point at the image centre (W/2, H/2)."""
    if not (focal_px > 0 and math.isfinite(focal_px)):
        raise InputError(f"focal length must be positive, got {focal_px}", fix="check the input")
    K = np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, width=int(width), height=int(height))


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length (pixels) giving `fov_deg` across the longer image side."""
    if not 0.0 < fov_deg < 180.0:
        raise InputError(f"field of view must be in (0, 180) degrees, got {fov_deg}", fix="e.g. 60")
    return max(width, height) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


def fov_from_focal(width: int, height: int, focal_px: float) -> float:
    """Field of view (degrees) across the longer image side."""
    return math.degrees(2.0 * math.atan(max(width, height) / 2.0 / focal_px))


def read_exif_camera(path: str | os.PathLike) -> ExifCamera:
    """Read size, orientation and focal-length fields of a photo. Missing fields are None."""
    try:
        with Image.open(path) as img:
            stored_w, stored_h = img.size
            exif = img.getexif()
    except Exception as exc:  # unreadable or not an image
        raise InputError(
            f"cannot read image ({exc})", path=path, fix="pass a JPEG/PNG photo"
        ) from exc
    sub = exif.get_ifd(ExifTags.IFD.Exif)

    def tag(key: int) -> float | None:
        value = sub.get(key, exif.get(key))
        try:
            value = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    orientation = int(exif.get(TAG_ORIENTATION, 1) or 1)
    swap = orientation in (5, 6, 7, 8)
    width, height = (stored_h, stored_w) if swap else (stored_w, stored_h)
    per_mm = _focal_plane_px_per_mm(tag, stored_w, stored_h)
    make_model = " ".join(str(exif.get(k, "")).strip() for k in (0x010F, 0x0110)).strip()
    return ExifCamera(
        width=width,
        height=height,
        orientation=orientation,
        focal_35mm=tag(TAG_FOCAL_35MM),
        focal_mm=tag(TAG_FOCAL_MM),
        focal_plane_px_per_mm=per_mm,
        make_model=make_model,
    )


def _focal_plane_px_per_mm(tag, stored_w: int, stored_h: int) -> tuple[float, float] | None:
    """Sensor pixels per mm along the stored x / y axes, scaled to the file's pixel grid."""
    xres, yres = tag(TAG_FP_XRES), tag(TAG_FP_YRES)
    unit = int(tag(TAG_FP_UNIT) or 2)  # EXIF default unit is the inch
    if xres is None or unit not in _MM_PER_UNIT:
        return None
    yres = yres or xres
    mm = _MM_PER_UNIT[unit]
    px_x, px_y = xres / mm, yres / mm
    # The resolution refers to the EXIF pixel dimensions; a resized file scales it.
    exif_w, exif_h = tag(TAG_PIXEL_X), tag(TAG_PIXEL_Y)
    if exif_w:
        px_x *= stored_w / exif_w
        px_y *= stored_h / (exif_h or exif_w * stored_h / stored_w)
    return px_x, px_y


def intrinsics_from_exif(
    exif: ExifCamera, sensor_width_mm: float | None = None
) -> tuple[IntrinsicsChoice | None, tuple[str, ...]]:
    """Focal length from EXIF fields, best first. Returns (choice or None, reasons skipped)."""
    w, h = exif.width, exif.height
    skipped: list[str] = []
    candidates: list[tuple[str, float, str]] = []
    if exif.focal_35mm:
        f = exif.focal_35mm * math.hypot(w, h) / FULL_FRAME_DIAGONAL_MM
        candidates.append(("exif-35mm", f, f"EXIF 35 mm-equivalent focal {exif.focal_35mm:g} mm"))
    if exif.focal_mm and exif.focal_plane_px_per_mm:
        px_x, px_y = exif.focal_plane_px_per_mm
        f = exif.focal_mm * math.sqrt(px_x * px_y)  # geometric mean: square pixels assumed
        text = f"EXIF focal {exif.focal_mm:g} mm x focal-plane {math.sqrt(px_x * px_y):.1f} px/mm"
        candidates.append(("exif-focal-plane", f, text))
    if exif.focal_mm and sensor_width_mm:
        f = exif.focal_mm / sensor_width_mm * max(w, h)
        text = f"EXIF focal {exif.focal_mm:g} mm on a {sensor_width_mm:g} mm wide sensor"
        candidates.append(("exif-sensor", f, text))
    if exif.focal_mm and not candidates:
        skipped.append(
            f"EXIF focal length {exif.focal_mm:g} mm without a sensor size "
            "(no 35 mm equivalent or focal-plane resolution; pass --sensor-width-mm)"
        )
    for source, focal, text in candidates:
        fov = fov_from_focal(w, h, focal)
        if not PLAUSIBLE_FOV_DEG[0] <= fov <= PLAUSIBLE_FOV_DEG[1]:
            skipped.append(f"{text} gives an implausible {fov:.1f} deg field of view")
            continue
        message = f"{text} -> f = {focal:.1f} px ({fov:.1f} deg across the long side)"
        choice = IntrinsicsChoice(
            camera_from_focal(w, h, focal), source, message, fov, exif, tuple(skipped)
        )
        return choice, tuple(skipped)
    return None, tuple(skipped)


def explicit_camera(K: np.ndarray, width: int, height: int) -> Camera:
    """Validate a user K (3x3, pixels, COLMAP pixel-centre principal point)."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise InputError(
            f"K must be a finite 3x3 matrix, got shape {K.shape}", fix="fx 0 cx; 0 fy cy; 0 0 1"
        )
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise InputError(
            "K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0", fix="fix K"
        )
    return Camera(K=K.copy(), width=int(width), height=int(height))


def choose_intrinsics(
    photo: str | os.PathLike | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    K: np.ndarray | None = None,
    fov_deg: float | None = None,
    sensor_width_mm: float | None = None,
    default_fov_deg: float = DEFAULT_FOV_DEG,
) -> IntrinsicsChoice:
    """Pick intrinsics for one photo (see the module docstring for the order).

    photo: path whose EXIF and size are read; or None with `width`/`height` (displayed size).
    K: explicit 3x3 intrinsics for the displayed (EXIF-rotated) image, COLMAP pixel centres.
    fov_deg: field of view across the longer side, degrees.
    sensor_width_mm: the sensor's longer side in mm, used with EXIF FocalLength.
    """
    exif = read_exif_camera(photo) if photo is not None else None
    if exif is not None:
        width, height = exif.width, exif.height
    if width is None or height is None:
        raise InputError("image size unknown", fix="pass a photo path or width and height")
    if K is not None:
        cam = explicit_camera(K, width, height)
        fov = fov_from_focal(width, height, math.sqrt(cam.fx * cam.fy))
        msg = f"explicit K: fx={cam.fx:.1f} fy={cam.fy:.1f} cx={cam.cx:.1f} cy={cam.cy:.1f} px"
        return IntrinsicsChoice(cam, "explicit-K", msg, fov, exif)
    if fov_deg is not None:
        focal = focal_from_fov(width, height, fov_deg)
        msg = f"--fov-deg {fov_deg:g} deg across the long side -> f = {focal:.1f} px"
        return IntrinsicsChoice(camera_from_focal(width, height, focal), "fov", msg, fov_deg, exif)
    skipped: tuple[str, ...] = ()
    if exif is not None:
        choice, skipped = intrinsics_from_exif(exif, sensor_width_mm)
        if choice is not None:
            return choice
    focal = focal_from_fov(width, height, default_fov_deg)
    why = "; ".join(skipped) if skipped else "no usable EXIF focal length"
    msg = f"default {default_fov_deg:g} deg field of view across the long side -> f = {focal:.1f} px ({why})"
    return IntrinsicsChoice(
        camera_from_focal(width, height, focal), "default-fov", msg, default_fov_deg, exif, skipped
    )
