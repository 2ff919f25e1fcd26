"""Scale for a single view's relative depth: relative (median depth 1) or metric from one
user measurement (distance to the image centre, z-depth at a pixel, or a known length between
two pixels). Pixels are COLMAP pixel coordinates of the displayed image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.records import Camera
from recon.single_view import valid_depth

SCALE_MODES = ("relative", "center_distance", "depth_at", "length")


@dataclass(frozen=True)
class ScaleSpec:
    """How to scale a relative depth map.

    relative:         median depth becomes `value` (default 1; units are arbitrary).
    center_distance:  the surface at the image centre is `value` metres from the camera
                      (distance along the central ray, i.e. ray length, not z).
    depth_at:         the z-depth at pixel `pixels[0]` is `value` metres.
    length:           the 3D distance between the surfaces at `pixels[0]` and `pixels[1]`
                      is `value` metres (a known length in the photo).
    Pixels are (u, v) in COLMAP pixel coordinates of the displayed image: the top-left pixel's
    centre is (0.5, 0.5). Depth is read as the median over a 5x5 window (robust to edges).
    """

    mode: str = "relative"
    value: float = 1.0
    pixels: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in SCALE_MODES:
            raise ValueError(f"scale mode must be one of {SCALE_MODES}, got {self.mode!r}")
        if not (self.value > 0 and np.isfinite(self.value)):
            raise ValueError(f"scale value must be positive, got {self.value}")
        need = {"depth_at": 1, "length": 2}.get(self.mode, 0)
        if len(self.pixels) < need:
            raise ValueError(f"scale mode {self.mode!r} needs {need} pixel(s)")


def _depth_near(depth: np.ndarray, uv: tuple[float, float], radius: int = 2) -> float:
    """Median valid depth in a (2 radius + 1)^2 window around pixel coordinates uv."""
    h, w = depth.shape
    j, i = int(np.floor(uv[0])), int(np.floor(uv[1]))
    if not (0 <= i < h and 0 <= j < w):
        raise ValueError(f"pixel {uv} is outside the {w}x{h} image")
    win = depth[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1]
    win = win[valid_depth(win)]
    if win.size == 0:
        raise ValueError(f"no valid depth near pixel {uv}")
    return float(np.median(win))


def _point_at(depth: np.ndarray, camera: Camera, uv: tuple[float, float]) -> np.ndarray:
    """Camera-frame point of the surface at pixel coordinates uv (robust depth)."""
    z = _depth_near(depth, uv)
    x = (uv[0] - camera.cx - camera.K[0, 1] * (uv[1] - camera.cy) / camera.fy) / camera.fx
    return z * np.array([x, (uv[1] - camera.cy) / camera.fy, 1.0])


def scale_factor(depth: np.ndarray, camera: Camera, spec: ScaleSpec) -> tuple[float, str]:
    """Factor to multiply `depth` by, and a one-line description of the measurement used."""
    h, w = depth.shape
    if (camera.width, camera.height) != (w, h):
        camera = camera.scaled(w, h)
    if spec.mode == "relative":
        med = float(np.median(depth[valid_depth(depth)]))
        return spec.value / med, f"relative scale: median depth = {spec.value:g}"
    if spec.mode == "center_distance":
        uv = (w / 2.0, h / 2.0)
        dist = float(np.linalg.norm(_point_at(depth, camera, uv)))
        return spec.value / dist, f"metric scale: distance to the image centre = {spec.value:g} m"
    if spec.mode == "depth_at":
        z = _depth_near(depth, spec.pixels[0])
        return spec.value / z, f"metric scale: z-depth at {spec.pixels[0]} = {spec.value:g} m"
    a = _point_at(depth, camera, spec.pixels[0])
    b = _point_at(depth, camera, spec.pixels[1])
    length = float(np.linalg.norm(a - b))
    if length <= 0:
        raise ValueError("the two measurement pixels backproject to the same point")
    text = f"metric scale: {spec.pixels[0]}-{spec.pixels[1]} = {spec.value:g} m"
    return spec.value / length, text
