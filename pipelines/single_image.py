"""Single photo -> textured mesh: `lotus-recon image PHOTO -o OUT`.

Stages (each a plain function of recon): intrinsics (recon.intrinsics: explicit K, --fov-deg,
EXIF, default 60 deg across the long side) -> one prediction (any Predictor) -> affine shift
from the normals (recon.normal_integration.recover_shift) -> resample to the meshing size ->
optional normal integration (off by default) -> scale (recon.single_view_scale: relative,
median depth 1; or metric from one measurement) -> pixel-grid mesh with discontinuity cuts (recon.single_view) -> PLY/GLB/OBJ.

Outputs in OUT:
    mesh.ply / mesh.glb / mesh.obj   vertex-coloured mesh; axes per `export_frame`: "opengl"
                                     (default: x right, y up, z toward the viewer; camera at the
                                     origin looking down -z, so viewers show it upright) or
                                     "opencv" (the camera frame: x right, y down, z forward)
    depth.npz                        depth (H, W) float32 z-depth in output units (0 = none),
                                     normal (H, W, 3) OpenCV camera frame, K (3, 3) at that size
    previews/{stem}_depth|normal|confidence.png
    single_image.json                everything in `SingleImageResult.summary()`
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from pipelines.predictors import Predictor
from pipelines.scene_config import PredictorConfig
from recon.atomic import write_json, write_npz
from recon.errors import ConfigError, InputError
from recon.images import load_rgb
from recon.intrinsics import IntrinsicsChoice, choose_intrinsics
from recon.normal_integration import (
    RefineInfo,
    affine_to_depth,
    recover_shift,
    refine_depth_with_normals,
)
from recon.preview import write_previews
from recon.records import Camera, Frame, MonoPrediction
from recon.single_view import (
    CutOptions,
    MeshStats,
    export_mesh,
    mesh_from_depth,
)
from recon.single_view_scale import ScaleSpec, scale_factor

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 64  # px, as for the scene command's photos
PANORAMA_ASPECT = 2.5  # wider than this (long:short) without intrinsics: warn


@dataclass(frozen=True)
class SingleImageOptions:
    """Settings of `run_single_image` (defaults are the documented CLI defaults)."""

    K: np.ndarray | None = None  # explicit 3x3 intrinsics of the displayed image
    fov_deg: float | None = None  # field of view across the longer side (default: EXIF, 60)
    sensor_width_mm: float | None = None  # sensor's longer side, used with EXIF FocalLength
    scale: ScaleSpec = field(default_factory=ScaleSpec)  # relative: median depth 1
    recover_shift: bool = True  # estimate the affine shift from the normals when present
    refine: bool = False  # normal integration anchored to the depth (needs normals); off by
    # default: on ground truth it helped only with accurate normals (tests/test_single_view.py)
    refine_lambda: float = 1e-3  # anchor weight (see recon.normal_integration)
    max_size: int = 1024  # longer side of the meshing grid, pixels (<= image size)
    cut: CutOptions = field(default_factory=CutOptions)
    formats: tuple[str, ...] = ("ply", "glb", "obj")
    export_frame: str = "opengl"
    previews: bool = True


@dataclass(frozen=True)
class ImageMeshConfig:
    """The `mesh` section of the image command's config."""

    max_size: int = 1024  # longer side of the meshing grid, pixels (<= image size)
    formats: tuple[str, ...] = ("ply", "glb", "obj")
    export_frame: Literal["opengl", "opencv"] = "opengl"  # see the module docstring
    previews: bool = True

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in ("ply", "glb", "obj")]
        if bad or not self.formats:
            raise ValueError(f"mesh.formats must be a non-empty list of ply, glb, obj; got {bad}")
        if self.max_size < 2:
            raise ValueError("mesh.max_size must be >= 2 px")


@dataclass(frozen=True)
class ImageConfig:
    """Everything `lotus-recon image` reads from presets, --config and --set."""

    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    mesh: ImageMeshConfig = field(default_factory=ImageMeshConfig)


@dataclass(frozen=True)
class SingleImageResult:
    """What was done, for the log and single_image.json."""

    photo: Path
    intrinsics: IntrinsicsChoice
    shift: float  # affine shift t used (b / a, in prediction units)
    shift_source: str  # "normals" | "none"
    scale: float  # factor applied to the relative depth
    scale_message: str
    refine: RefineInfo | None
    mesh: MeshStats
    mesh_size: tuple[int, int]  # (width, height) of the meshing grid
    files: dict[str, Path]

    def summary(self) -> dict:
        return {
            "photo": str(self.photo),
            "intrinsics": {
                "source": self.intrinsics.source,
                "message": self.intrinsics.message,
                "K": self.intrinsics.camera.K.tolist(),
                "fov_deg_long_side": self.intrinsics.fov_deg,
                "skipped": list(self.intrinsics.skipped),
            },
            "shift": {"value": self.shift, "source": self.shift_source},
            "scale": {"factor": self.scale, "message": self.scale_message},
            "refine": None if self.refine is None else self.refine.summary(),
            "mesh": self.mesh.summary(),
            "mesh_size": list(self.mesh_size),
            "files": {k: str(v) for k, v in self.files.items()},
        }


def load_photo(photo: Path, options: SingleImageOptions) -> tuple[Frame, IntrinsicsChoice]:
    """Decode the photo (EXIF orientation applied) and choose its intrinsics."""
    image = load_rgb(photo)
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image is {w}x{h} px, smaller than {MIN_IMAGE_SIDE} px",
            path=photo,
            fix="pass a full-size photo",
        )
    choice = choose_intrinsics(
        photo, K=options.K, fov_deg=options.fov_deg, sensor_width_mm=options.sensor_width_mm
    )
    if choice.source == "default-fov" and max(w, h) > PANORAMA_ASPECT * min(w, h):
        log.warning(
            "%s is %.1f:1, likely a panorama: it is meshed as a pinhole photo with the default "
            "field of view, which bends it; pass --fov-deg or --K if it is a pinhole photo",
            photo,
            max(w, h) / min(w, h),
        )
    if (choice.camera.width, choice.camera.height) != (w, h):
        raise InputError(
            f"decoded size {w}x{h} differs from the EXIF size "
            f"{choice.camera.width}x{choice.camera.height}",
            path=photo,
            fix="re-export the photo",
        )
    return Frame(name=Path(photo).name, image=image, camera=choice.camera), choice


def relative_depth(
    pred: MonoPrediction, camera: Camera, use_normals: bool
) -> tuple[np.ndarray, float, str]:
    """(H, W) relative z-depth (NaN = none), the shift used and where it came from."""
    shift, source = 0.0, "none"
    if use_normals and pred.normal is not None:
        shift, cost = recover_shift(pred.values, pred.space, pred.normal, camera)
        source = "normals"
        log.info("affine shift %.4g from the normals (mean 1 - cos %.3f)", shift, cost)
    return affine_to_depth(pred.values, pred.space, shift), shift, source


def _nearest(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    """Nearest-neighbour resample at pixel centres (keeps depth edges sharp)."""
    H, W = arr.shape[:2]
    rows = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.int64), W - 1)
    return arr[rows][:, cols]


def mesh_grid(frame: Frame, pred: MonoPrediction, depth: np.ndarray, max_size: int):
    """Resample image, depth, normal, confidence and camera to the meshing size."""
    h, w = depth.shape
    factor = min(1.0, max_size / max(h, w))
    mw, mh = max(2, round(w * factor)), max(2, round(h * factor))
    camera = frame.camera.scaled(mw, mh)
    if (mw, mh) == (w, h):
        return frame.image, depth, pred.normal, pred.confidence, camera
    image = np.asarray(Image.fromarray(frame.image).resize((mw, mh), Image.BILINEAR))
    normal = None if pred.normal is None else _nearest(pred.normal, mw, mh)
    conf = None if pred.confidence is None else _nearest(pred.confidence, mw, mh)
    return image, _nearest(depth, mw, mh), normal, conf, camera


def _scaled_spec(spec: ScaleSpec, sx: float, sy: float) -> ScaleSpec:
    """Measurement pixels from photo coordinates to meshing-grid coordinates."""
    return replace(spec, pixels=tuple((u * sx, v * sy) for u, v in spec.pixels))


def run_single_image(
    photo: str | Path,
    out_dir: str | Path,
    predictor: Predictor,
    options: SingleImageOptions | None = None,
) -> SingleImageResult:
    """Photo -> mesh files in `out_dir` (see the module docstring). Raises typed errors."""
    options = options or SingleImageOptions()
    photo, out_dir = Path(photo), Path(out_dir)
    frame, intr = load_photo(photo, options)
    log.info("intrinsics: %s", intr.message)
    pred = predictor.predict([frame])[0]
    depth, shift, shift_source = relative_depth(pred, frame.camera, options.recover_shift)
    if not np.isfinite(depth).any():
        raise InputError("the prediction has no usable depth", path=photo, fix="check the model")
    image, depth, normal, conf, camera = mesh_grid(frame, pred, depth, options.max_size)
    refine_info = None
    if options.refine and normal is not None:
        depth, refine_info = refine_depth_with_normals(
            depth, normal, camera, conf, options.refine_lambda, options.cut
        )
        log.info("normal integration: median depth change %.2f%%", 100 * refine_info.median_change)
    sx, sy = camera.width / frame.camera.width, camera.height / frame.camera.height
    factor, scale_msg = scale_factor(depth, camera, _scaled_spec(options.scale, sx, sy))
    depth = np.where(np.isfinite(depth) & (depth > 0), depth * factor, 0.0).astype(np.float32)
    log.info("%s (factor %.4g)", scale_msg, factor)
    mesh = mesh_from_depth(depth, camera, normal, image, options.cut)
    log.info("mesh: %d faces, %d cut as discontinuities, %d components kept",
             mesh.stats.faces, mesh.stats.cut_faces, mesh.stats.components_kept)  # fmt: skip
    files = write_outputs(out_dir, photo.stem, mesh, depth, normal, conf, camera, options)
    result = SingleImageResult(
        photo, intr, shift, shift_source, factor, scale_msg, refine_info, mesh.stats,
        (camera.width, camera.height), files,
    )  # fmt: skip
    write_json(out_dir / "single_image.json", result.summary())
    return result


def write_outputs(out_dir, stem, mesh, depth, normal, conf, camera, options) -> dict[str, Path]:
    """Mesh formats, depth.npz and previews; returns {kind: path}."""
    files: dict[str, Path] = {}
    for fmt in options.formats:
        path = out_dir / f"mesh.{fmt}"
        export_mesh(mesh, path, options.export_frame)
        files[fmt] = path
    arrays = {"depth": depth, "K": camera.K}
    if normal is not None:
        arrays["normal"] = np.asarray(normal, np.float32)
    write_npz(out_dir / "depth.npz", **arrays)
    files["depth"] = out_dir / "depth.npz"
    if options.previews:
        for path in write_previews(out_dir / "previews", stem, depth, normal, conf):
            files[path.stem.rsplit("_", 1)[-1] + "_preview"] = path
    return files


def options_from_args(args) -> SingleImageOptions:
    """CLI flags -> options (K as 'fx,fy,cx,cy' in pixels of the EXIF-rotated photo)."""
    K = None
    if args.intrinsics:
        try:
            fx, fy, cx, cy = (float(v) for v in args.intrinsics.split(","))
        except ValueError as exc:
            raise ConfigError(
                f"--K {args.intrinsics!r} is not 'fx,fy,cx,cy'", fix="e.g. --K 800,800,320,240"
            ) from exc
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    scale = ScaleSpec()
    if args.metric_center_distance is not None:
        if args.metric_center_distance <= 0:
            raise ConfigError("--metric-center-distance must be > 0 (metres)")
        scale = ScaleSpec(mode="center_distance", value=float(args.metric_center_distance))
    return SingleImageOptions(K=K, fov_deg=args.fov_deg, scale=scale, refine=args.refine)


def run_image_command(args) -> int:
    from pipelines.predictor_factory import make_predictor
    from pipelines.scene import config_from_args

    config = config_from_args(args, ImageConfig)
    if Path(args.photo).is_dir():
        raise InputError(
            "is a folder, not a photo",
            path=args.photo,
            fix="pass one photo, or use `lotus-recon scene` for a folder",
        )
    if not Path(args.photo).is_file():
        raise InputError("photo not found", path=args.photo, fix="pass an existing image file")
    predictor = make_predictor(config.predictor)
    options = replace(
        options_from_args(args),
        max_size=config.mesh.max_size,
        formats=tuple(config.mesh.formats),
        export_frame=config.mesh.export_frame,
        previews=config.mesh.previews,
    )
    result = run_single_image(args.photo, args.output, predictor, options)
    log.info("wrote %s", ", ".join(str(p) for p in result.files.values()))
    return 0
