"""Shared pieces of the prior writers: inputs, encodings, axis conversions, atomic image writes.

Inputs are in this package's conventions (DESIGN.md): depth is metric z-depth in SfM world units
(0 or NaN = unknown), normals are unit vectors in the OpenCV camera frame (x right, y down,
z forward) facing the camera, poses are `cam_from_world` (world -> OpenCV camera). Each writer
converts to its consumer's layout at the edge and says so in its module docstring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from recon.atomic import write_with
from recon.errors import InputError
from recon.records import Camera, Frame

# OpenCV camera axes (x right, y down, z forward) -> OpenGL/nerfstudio camera axes (x right,
# y up, z backward). Its own inverse.
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])
UINT16_MAX = 65535
QUANTISATION_SAMPLES = 10_000  # depths a view for the median in `quantisation_warning`


@dataclass(frozen=True)
class PriorView:
    """Priors of one registered frame, validated."""

    index: int  # position in the export (0-based), used by index-named layouts
    stem: str  # file-name stem unique within the export (the frame name, flattened)
    frame: Frame
    depth: np.ndarray  # (H, W) float32 z-depth, world units; 0 where unknown (never NaN)
    normal: np.ndarray | None  # (H, W, 3) float32 unit, OpenCV camera frame; 0 where unknown
    confidence: np.ndarray | None  # (H, W) float32 in [0, 1]

    @property
    def valid(self) -> np.ndarray:
        return self.depth > 0

    @property
    def world_normal(self) -> np.ndarray | None:
        """(H, W, 3) float32 normals in the world frame (R^T n); 0 where unknown."""
        if self.normal is None:
            return None
        return (self.normal @ self.frame.cam_from_world[:3, :3]).astype(np.float32)


@dataclass(frozen=True)
class SparsePoints:
    """SfM points for the COLMAP model and point-cloud initialisations."""

    xyz: np.ndarray  # (N, 3) float64, world frame, world units
    rgb: np.ndarray  # (N, 3) uint8
    error: np.ndarray | None = None  # (N,) float64 mean reprojection error, pixels
    ids: np.ndarray | None = None  # (N,) int64 COLMAP point3D ids (match Frame.sparse.point_ids)

    @classmethod
    def from_reconstruction(cls, rec) -> SparsePoints:
        """From a pycolmap.Reconstruction (ids kept, so tracks can be rebuilt)."""
        ids = np.array(sorted(rec.points3D), dtype=np.int64)
        pts = [rec.points3D[int(i)] for i in ids]
        return cls(
            xyz=np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3),
            rgb=np.array([p.color for p in pts], dtype=np.uint8).reshape(-1, 3),
            error=np.array([p.error for p in pts], dtype=np.float64),
            ids=ids,
        )


@dataclass
class PriorsWritten:
    """What a writer produced (for the log and the CLI summary)."""

    format: str
    root: Path  # the folder the consumer is pointed at
    views: int
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how to load it, conventions chosen
    warnings: list[str] = field(default_factory=list)  # lossy steps (clipped depth, ...)

    def summary(self) -> dict:
        return {
            "format": self.format,
            "root": str(self.root),
            "views": self.views,
            "files": len(self.files),
            "notes": self.notes,
            "warnings": self.warnings,
        }


def progress(views: Sequence[PriorView], fmt: str):
    """Progress bar over the views of one writer (quiet when not a terminal)."""
    from recon.progress import progress

    return progress(views, desc=fmt, unit="view", leave=False)


def safe_stem(name: str) -> str:
    """Frame name -> file stem: extension dropped, folders joined with '__', odd chars '_'."""
    stem = str(Path(name).with_suffix("")).replace("\\", "/").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)


def prepare_views(
    frames: Sequence[Frame],
    depths: Sequence[np.ndarray],
    normals: Sequence[np.ndarray | None] | None = None,
    confidences: Sequence[np.ndarray | None] | None = None,
) -> list[PriorView]:
    """Validate shapes and poses; NaN/negative depth becomes 0; normals re-normalised."""
    n = len(frames)
    normals = list(normals) if normals is not None else [None] * n
    confidences = list(confidences) if confidences is not None else [None] * n
    if not (len(depths) == len(normals) == len(confidences) == n) or n == 0:
        raise InputError(
            f"{n} frames but {len(depths)} depths, {len(normals)} normals, "
            f"{len(confidences)} confidences",
            fix="pass one depth (and optional normal/confidence) per frame",
        )
    check_unique_stems([f.name for f in frames])
    items = zip(frames, depths, normals, confidences)
    return [
        prepare_one(i, frame, depth, normal, conf)
        for i, (frame, depth, normal, conf) in enumerate(items)
    ]


def check_unique_stems(names: Sequence[str]) -> None:
    """Raise when two frame names map to one file stem (their files would overwrite)."""
    stems: set[str] = set()
    for name in names:
        stem = safe_stem(name)
        if stem in stems:
            raise InputError(f"two frames map to the file stem {stem!r}", fix="rename one")
        stems.add(stem)


class StreamedViews(Sequence[PriorView]):
    """Views built on access by `load(i)` -> (frame, depth, normal | None, confidence | None),
    so a writer holds one view's arrays at a time however many views there are (writers that
    pass over the views twice load them twice). `names`: the frames' names, in order."""

    def __init__(self, names: Sequence[str], load: Callable[[int], tuple]):
        self.names = list(names)
        self.load = load
        if not self.names:
            raise InputError("no view to export", fix="export at least one registered view")
        check_unique_stems(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        return prepare_one(i, *self.load(i))


def prepare_one(i: int, frame: Frame, depth, normal, conf) -> PriorView:
    """One validated PriorView: NaN/negative depth becomes 0, normals re-normalised."""
    h, w = frame.image.shape[:2]
    if frame.cam_from_world is None:
        raise InputError(f"frame {frame.name} has no pose", fix="export registered frames only")
    if (frame.camera.width, frame.camera.height) != (w, h):
        raise InputError(f"frame {frame.name}: camera size differs from the image", fix="rescale K")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape != (h, w):
        raise InputError(f"frame {frame.name}: depth {depth.shape} != image {(h, w)}", fix="resize")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    if normal is not None:
        normal = np.asarray(normal, dtype=np.float32)
        if normal.shape != (h, w, 3):
            raise InputError(f"frame {frame.name}: normal shape {normal.shape}", fix="(H, W, 3)")
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        ok = np.isfinite(norm) & (norm > 1e-6)
        normal = np.where(ok, normal / np.where(ok, norm, 1.0), 0.0).astype(np.float32)
    if conf is not None:
        conf = np.clip(np.nan_to_num(np.asarray(conf, dtype=np.float32)), 0.0, 1.0)
        if conf.shape != (h, w):
            raise InputError(f"frame {frame.name}: confidence shape {conf.shape}", fix="(H, W)")
    return PriorView(i, safe_stem(frame.name), frame, depth, normal, conf)


def single_camera(views: Sequence[PriorView], fmt: str) -> Camera:
    """The one camera shared by all views (TUM-style layouts have a single calibration)."""
    cam = views[0].frame.camera
    for k in range(1, len(views)):  # by index: streamed views load one at a time
        v = views[k]
        other = v.frame.camera
        same = (other.width, other.height) == (cam.width, cam.height) and np.allclose(
            other.K, cam.K, rtol=1e-6, atol=1e-6
        )
        if not same:
            raise InputError(
                f"{fmt} takes one camera, but {v.frame.name} has different intrinsics",
                fix="export views of one camera, or use the nerfstudio/colmap/npz formats",
            )
    return cam


def depth_to_uint16(depth: np.ndarray, units_per_world: float) -> tuple[np.ndarray, int]:
    """Quantise z-depth to uint16 = round(depth * units_per_world); 0 = unknown.

    Depths that do not fit (> 65535 units) become 0 (unknown), never a clipped wrong value.
    Returns the image and the number of such pixels.
    """
    scaled = np.round(np.asarray(depth, dtype=np.float64) * units_per_world)
    over = scaled > UINT16_MAX
    out = np.where((scaled > 0) & ~over, scaled, 0).astype(np.uint16)
    return out, int(over.sum())


def quantisation_warning(views: Sequence[PriorView], units_per_world: float, fmt: str) -> list[str]:
    """Warn when uint16 quantisation is coarse (> 1 % of the median depth) or clips. The
    median is taken over at most QUANTISATION_SAMPLES depths a view (one pass, any length)."""
    samples, far = [], 0.0
    for v in views:
        known = v.depth[v.valid]
        samples.append(known[:: max(1, known.size // QUANTISATION_SAMPLES)])
        far = max(far, float(v.depth.max()) * units_per_world)
    med = float(np.median(np.concatenate(samples))) if samples else 1.0
    out = []
    if med * units_per_world < 100:
        out.append(
            f"{fmt}: median depth is {med * units_per_world:.0f} depth units; uint16 steps are "
            f"{100 / max(med * units_per_world, 1e-9):.1f}% of it (scale the model up)"
        )
    if far > UINT16_MAX:
        out.append(f"{fmt}: depths beyond {UINT16_MAX / units_per_world:g} world units set to 0")
    return out


def encode_normal_rgb(normal: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit vectors -> uint8 RGB = round((n + 1) / 2 * 255). Unknown (0) -> 128."""
    return np.clip(np.round((normal + 1.0) * 127.5), 0, 255).astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> Path:
    """Atomic PNG: (H, W, 3) uint8 RGB or (H, W) uint16 / uint8 grey."""
    array = np.ascontiguousarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG needs uint8 or uint16, got {array.dtype}")
    image = Image.fromarray(array)
    write_with(path, lambda tmp: image.save(tmp, format="PNG"))
    return Path(path)


def write_npy(path: Path, array: np.ndarray) -> Path:
    """Atomic .npy (np.load reads it back unchanged)."""
    write_with(path, lambda tmp: np.save(tmp, np.ascontiguousarray(array)))
    return Path(path)


def world_from_cam(view: PriorView) -> np.ndarray:
    """(4, 4) camera-to-world in OpenCV camera axes."""
    return np.linalg.inv(view.frame.cam_from_world)


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (qx, qy, qz, qw), qw >= 0, of a rotation matrix (3, 3)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(R).as_quat()  # scipy order: x, y, z, w
    return q if q[3] >= 0 else -q


def opencv_principal_point(camera: Camera) -> tuple[float, float]:
    """(cx, cy) in the OpenCV / integer-pixel-centre convention (COLMAP's minus 0.5)."""
    return camera.cx - 0.5, camera.cy - 0.5


def scene_bounds(views: Sequence[PriorView], step: int = 4) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of a sphere holding the depth points (1-99 %) and cameras."""
    chunks = []
    for v in views:
        h, w = v.depth.shape
        jj, ii = np.meshgrid(np.arange(0, w, step) + 0.5, np.arange(0, h, step) + 0.5)
        z = v.depth[::step, ::step]
        ok = z > 0
        K = v.frame.camera.K
        x = (jj - K[0, 2]) / K[0, 0] * z
        y = (ii - K[1, 2]) / K[1, 1] * z
        cam = np.stack([x[ok], y[ok], z[ok]], axis=1)
        chunks.append(cam @ world_from_cam(v)[:3, :3].T + world_from_cam(v)[:3, 3])
        chunks.append(world_from_cam(v)[None, :3, 3])
    pts = np.concatenate(chunks)
    lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
    centre = 0.5 * (lo + hi)
    inside = np.all((pts >= lo) & (pts <= hi), axis=1)
    radius = float(np.linalg.norm(pts[inside] - centre, axis=1).max()) if inside.any() else 1.0
    return centre, max(radius, 1e-9) * 1.05


def fmt_float(x: float) -> str:
    """Shortest round-trip text of a float (for text files)."""
    return repr(float(x)) if math.isfinite(x) else "nan"
