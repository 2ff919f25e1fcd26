"""Records passed between stages. Frozen dataclasses; shapes, units and frames next to each field.

Conventions (see DESIGN.md): camera frame is OpenCV (x right, y down, z forward); pixel centres
follow COLMAP (the top-left pixel's centre is (0.5, 0.5)); depth is z-depth, not ray length;
poses are named for what they map (`cam_from_world` maps world points into the camera frame).
"World units" are SfM's (metric only up to SfM's global scale; metres for a metric model).
"Prediction units" are whatever a monocular model outputs (affine-invariant: no unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DepthSpace = Literal["depth", "disparity"]
DEPTH_SPACES: tuple[str, ...] = ("depth", "disparity")


@dataclass(frozen=True)
class Camera:
    """Undistorted pinhole camera."""

    K: np.ndarray  # (3, 3) float64, pixels; principal point in COLMAP pixel-centre convention;
    # zero skew (K[0, 1] = 0) for every camera this package builds
    width: int  # pixels
    height: int  # pixels

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def scaled(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to (width, height)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(K=K, width=int(width), height=int(height))


@dataclass(frozen=True)
class SparseObservations:
    """COLMAP 3D points observed by one view (N points)."""

    uv: np.ndarray  # (N, 2) float64, pixels, COLMAP pixel centres
    z: np.ndarray  # (N,) float64, z-depth of the 3D point in this camera, world units
    reprojection_error: np.ndarray  # (N,) float64, pixels, the 3D point's mean error
    track_length: np.ndarray  # (N,) int, number of images observing the 3D point (count)
    point_ids: np.ndarray | None = None  # (N,) int64, COLMAP point3D ids

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def subset(self, mask: np.ndarray) -> SparseObservations:
        return SparseObservations(
            uv=self.uv[mask],
            z=self.z[mask],
            reprojection_error=self.reprojection_error[mask],
            track_length=self.track_length[mask],
            point_ids=None if self.point_ids is None else self.point_ids[mask],
        )


@dataclass(frozen=True)
class Frame:
    """One registered photo. `name` (path relative to the image root) is the key everywhere."""

    name: str  # e.g. "sub/0001.jpg": relative to the image root, "/" separators
    image: np.ndarray  # (H, W, 3) uint8 RGB, undistorted, EXIF orientation applied
    camera: Camera  # intrinsics of `image` (same W, H)
    cam_from_world: np.ndarray | None = None  # (4, 4) float64 rigid, world units, world -> camera
    sparse: SparseObservations | None = None  # SfM points seen by this view; None without SfM

    @property
    def world_from_cam(self) -> np.ndarray:
        """(4, 4) float64, OpenCV camera -> world (world units)."""
        if self.cam_from_world is None:
            raise ValueError(f"frame {self.name} has no pose")
        return np.linalg.inv(self.cam_from_world)

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates (world units)."""
        return self.world_from_cam[:3, 3]


@dataclass(frozen=True)
class MonoPrediction:
    """A monocular prediction for one frame, at the frame's resolution."""

    values: np.ndarray  # (H, W) float32, prediction units, affine in z or 1/z; NaN = no value
    space: DepthSpace  # which quantity `values` is affine in: "depth" z, "disparity" 1 / z
    normal: np.ndarray | None = None  # (H, W, 3) float32, unit (no unit), OpenCV camera frame
    confidence: np.ndarray | None = None  # (H, W) float32 in [0, 1] (no unit); 1 = trusted
    producer: str = "unknown"  # e.g. "lotus:jingheya/lotus-depth-g-v2-1-disparity", "file"

    def __post_init__(self) -> None:
        if self.space not in DEPTH_SPACES:
            raise ValueError(f"space must be one of {DEPTH_SPACES}, got {self.space!r}")
        if self.values.ndim != 2:
            raise ValueError(f"values must be (H, W), got shape {self.values.shape}")
        hw = self.values.shape
        if self.normal is not None and self.normal.shape != (*hw, 3):
            raise ValueError(f"normal must be {(*hw, 3)}, got {self.normal.shape}")
        if self.confidence is not None and self.confidence.shape != hw:
            raise ValueError(f"confidence must be {hw}, got {self.confidence.shape}")


@dataclass(frozen=True)
class AlignSamples:
    """Sparse points usable for a fit (M points), with the prediction sampled at them."""

    uv: np.ndarray  # (M, 2) float64, pixels, COLMAP pixel centres
    value: np.ndarray  # (M,) float64, prediction units: `MonoPrediction.values` sampled at uv
    z: np.ndarray  # (M,) float64, world units, z-depth of the sparse point in this camera

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def subset(self, mask: np.ndarray) -> AlignSamples:
        return AlignSamples(uv=self.uv[mask], value=self.value[mask], z=self.z[mask])


@dataclass(frozen=True)
class Alignment:
    """Scale and shift mapping a prediction v (prediction units) to world units in its own space.

    depth space:     z = scale * v + shift       (z: z-depth in world units)
    disparity space: 1 / z = scale * v + shift   (1 / z in 1 / world units)
    """

    scale: float  # depth: world units per prediction unit; disparity: 1 / world units per unit
    shift: float  # depth: world units; disparity: 1 / world units
    space: DepthSpace  # the prediction's space, in which scale and shift apply
    num_points: int = 0  # sparse points offered to the fit (after filters), count
    num_inliers: int = 0  # of those, relative depth error under align.inlier_threshold, count
    residual: float = float("nan")  # median |z_fit - z| / z over inliers (fraction, no unit)
    status: str = "ok"  # ok | too_few_points | borrowed | failed
    message: str = ""  # why a view is not "ok", for people
    # Optional smooth correction fields (H, W) float32 at the prediction's resolution, applied
    # per pixel instead of scale / shift (same units as those); None = the global fit alone.
    scale_field: np.ndarray | None = field(default=None, repr=False)
    shift_field: np.ndarray | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "borrowed")

    def to_depth(self, values: np.ndarray) -> np.ndarray:
        """Metric z-depth (same shape as `values`); NaN where the mapping is not positive."""
        values = np.asarray(values, dtype=np.float64)
        scale = self.scale if self.scale_field is None else self.scale_field
        shift = self.shift if self.shift_field is None else self.shift_field
        mapped = scale * values + shift
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.space == "disparity":
                depth = np.where(mapped > 0, 1.0 / mapped, np.nan)
            else:
                depth = np.where(mapped > 0, mapped, np.nan)
        return depth.astype(np.float32)

    def summary(self) -> dict:
        return {
            "scale": self.scale,
            "shift": self.shift,
            "space": self.space,
            "num_points": self.num_points,
            "num_inliers": self.num_inliers,
            "residual": self.residual,
            "status": self.status,
            "message": self.message,
            "smooth_correction": self.scale_field is not None,
        }


@dataclass(frozen=True)
class View:
    """A frame ready for fusion."""

    frame: Frame
    depth: np.ndarray  # (H, W) float32, z-depth in world units; 0 or NaN = invalid
    normal: np.ndarray | None  # (H, W, 3) float32, unit (no unit), OpenCV camera frame
    weight: np.ndarray  # (H, W) float32 >= 0, per-pixel fusion weight (relative, no unit)
