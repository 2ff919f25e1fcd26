"""Structure from motion with pycolmap on CPU: features, matching, mapping, model checks.

The output is a COLMAP model with undistorted pinhole cameras (see `recon.colmap_model`),
so every later stage can assume pinhole images.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pycolmap

from recon.errors import SfMError
from recon.retrieval import retrieval_pairs, write_pairs

log = logging.getLogger(__name__)

CAMERA_MODES = {
    "auto": pycolmap.CameraMode.AUTO,  # one camera per (size, EXIF focal) group
    "single": pycolmap.CameraMode.SINGLE,
    "per_folder": pycolmap.CameraMode.PER_FOLDER,
    "per_image": pycolmap.CameraMode.PER_IMAGE,
}


def match_colmap_logging() -> None:
    """COLMAP's own log (glog, straight to stderr) only with debug logging (-v).

    Its errors are part of normal operation here (a mapper that finds no model before the
    fallback runs); the checks in this module turn what matters into one-line messages.
    """
    debug = logging.getLogger(__name__).isEnabledFor(logging.DEBUG)
    pycolmap.logging.minloglevel = 0 if debug else 3  # 0 = INFO, 3 = FATAL only


@dataclass(frozen=True)
class SfMParams:
    # auto | exhaustive | sequential | retrieval. auto: exhaustive up to exhaustive_max_images;
    # above it sequential for a numbered sequence (video frames, a burst), retrieval otherwise.
    matcher: str = "auto"
    exhaustive_max_images: int = 50
    sequential_overlap: int = 10  # neighbours matched per image in sequential mode
    retrieval_neighbors: int = 20  # most similar images matched per image (recon.retrieval)
    # incremental | global | auto (global from global_min_images views up: it solves all
    # rotations and positions at once instead of adding views one by one)
    mapper: str = "incremental"
    global_min_images: int = 300
    fallback_mapper: bool = True  # retry with the other mapper when the model fails its checks
    camera_mode: str = "auto"  # auto | single | per_folder | per_image
    camera_model: str = "SIMPLE_RADIAL"  # COLMAP model used when intrinsics are unknown
    # Known pinhole intrinsics of the (normalised) images, [fx, fy, cx, cy] px; None = estimate.
    intrinsics: list[float] | None = None
    max_num_features: int = 8192
    max_image_size: int = 3200  # px, long edge used for feature extraction
    min_model_size: int = 3  # smallest sub-model the mapper keeps (COLMAP's default is 10)
    # When the incremental model leaves views out, mapping is retried with this many 2D-3D
    # inliers needed to register a view (COLMAP's default is 30); the retry's model is kept when
    # it passes the checks with more views. 0 = no retry. Wide-baseline rings need it: 13/16
    # views of the Middlebury temple ring register at 30, 16/16 at 15, poses as accurate.
    relaxed_min_inliers: int = 15
    max_mean_reprojection_error: float = 2.0  # px; a model above this fails the check
    min_observations_per_view: int = 20  # views with fewer 3D points are flagged
    num_threads: int = -1  # -1 = all cores; 1 makes the model identical from run to run
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {
            "matcher": ("auto", "exhaustive", "sequential", "retrieval"),
            "mapper": ("incremental", "global", "auto"),
            "camera_mode": tuple(CAMERA_MODES),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"sfm.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.intrinsics is not None and len(self.intrinsics) != 4:
            raise ValueError("sfm.intrinsics must be [fx, fy, cx, cy] (px)")
        if min(self.max_num_features, self.max_image_size, self.min_model_size) < 1:
            raise ValueError("sfm sizes and counts must be >= 1")
        if self.relaxed_min_inliers < 0:
            raise ValueError("sfm.relaxed_min_inliers must be >= 0 (0 = no retry)")


@dataclass
class SfMReport:
    """What SfM did, for the log, the workspace and the user."""

    num_images: int
    num_registered: int = 0
    mean_reprojection_error: float = float("nan")  # px
    num_points3d: int = 0
    mapper: str = ""
    matcher: str = ""
    unregistered: list[str] = field(default_factory=list)
    weak_views: list[str] = field(default_factory=list)  # registered with few 3D points
    problems: list[str] = field(default_factory=list)  # failed checks, one line each
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.num_registered >= 2 and not self.problems


def run_sfm(
    image_root: Path,
    names: list[str],
    work_dir: Path,
    params: SfMParams,
    devices: dict[str, str] | None = None,
) -> tuple[pycolmap.Reconstruction, SfMReport]:
    """Run SfM on `names` (relative to `image_root`); return the best model and its report.

    `work_dir` holds the feature database; it is rebuilt from scratch on every call.
    """
    if len(names) < 2:
        raise SfMError(
            f"SfM needs at least 2 images, got {len(names)}",
            path=image_root,
            fix="add overlapping photos of the scene",
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / "database.db"
    database.unlink(missing_ok=True)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    # COLMAP's extraction and matching are single calls that print nothing for minutes on a
    # large set: say what is running and how much of it there is.
    log.info("SfM: extracting features from %d photos", len(names))
    _extract(database, image_root, names, params)
    seconds["features"] = time.perf_counter() - start
    start = time.perf_counter()
    matcher = _match(database, names, params)
    seconds["matching"] = time.perf_counter() - start
    params = replace(params, mapper=choose_mapper(len(names), params))

    best: tuple[pycolmap.Reconstruction, SfMReport] | None = None
    for mapper, relaxed in _attempts(params):
        # A relaxed retry helps only when views were left out; the other mapper only when no
        # model passed its checks.
        if best is not None and (not best[1].unregistered if relaxed else best[1].passed):
            continue
        label = f"{mapper}_relaxed" if relaxed else mapper
        start = time.perf_counter()
        rec = _map(database, image_root, work_dir / f"models_{label}", mapper, params, relaxed)
        seconds[f"mapping_{label}"] = time.perf_counter() - start
        report = check_model(rec, names, params, devices)
        report.mapper, report.matcher = label, matcher
        log.info(
            "SfM (%s mapper): %d/%d registered, %.2f px mean reprojection error",
            label,
            report.num_registered,
            len(names),
            report.mean_reprojection_error,
        )
        if not report.passed:
            log.warning("SfM model failed its checks: %s", "; ".join(report.problems))
        if best is None or _better(report, best[1]):
            best = (rec, report)
    assert best is not None
    rec, report = best
    report.seconds = dict(seconds)  # every attempt's time, not only the kept one's
    if report.num_registered < 2:
        raise SfMError(
            f"SfM registered {report.num_registered} of {len(names)} images",
            path=image_root,
            fix="photos need overlap and texture; add views between them, or pass --colmap",
        )
    return rec, report


def _attempts(params: SfMParams) -> list[tuple[str, bool]]:
    """(mapper, relaxed registration) in the order tried: the chosen mapper, a relaxed
    incremental retry for views left out, then the other mapper for a model that failed."""
    attempts = [(params.mapper, False)]
    if params.mapper == "incremental" and params.relaxed_min_inliers > 0:
        attempts.append(("incremental", True))
    if params.fallback_mapper:
        attempts.append(("global" if params.mapper == "incremental" else "incremental", False))
    return attempts


def _better(a: SfMReport, b: SfMReport) -> bool:
    """Prefer a model that passes its checks, then more registered views."""
    return (a.passed, a.num_registered) > (b.passed, b.num_registered)


def _extract(database: Path, image_root: Path, names: list[str], params: SfMParams) -> None:
    reader = pycolmap.ImageReaderOptions()
    if params.intrinsics is not None:
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(f"{v:.10g}" for v in params.intrinsics)
    else:
        reader.camera_model = params.camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = params.max_num_features
    extraction.max_image_size = params.max_image_size
    extraction.num_threads = params.num_threads
    extraction.use_gpu = False
    mode = "single" if params.intrinsics is not None else params.camera_mode
    if mode not in CAMERA_MODES:
        raise SfMError(f"unknown camera mode {mode!r}", fix=f"use one of {sorted(CAMERA_MODES)}")
    pycolmap.extract_features(
        database,
        image_root,
        image_names=names,
        camera_mode=CAMERA_MODES[mode],
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def choose_matcher(names: list[str], params: SfMParams) -> str:
    """The matcher `auto` stands for: every pair while that is affordable, then neighbours in
    the sequence for numbered frames, and image retrieval for an unordered set."""
    if params.matcher != "auto":
        return params.matcher
    if len(names) <= params.exhaustive_max_images:
        return "exhaustive"
    return "sequential" if looks_like_sequence(names) else "retrieval"


def choose_mapper(num_images: int, params: SfMParams) -> str:
    if params.mapper != "auto":
        return params.mapper
    return "global" if num_images >= params.global_min_images else "incremental"


def looks_like_sequence(names: list[str]) -> bool:
    """Names that differ only in a frame number with a regular step (frame_0001.jpg,
    frame_0002.jpg, ... or every 5th frame): consecutive numbers are neighbouring views."""
    parts = [re.fullmatch(r"(.*?)(\d+)(\.[^.]+)?", n) for n in names]
    if len(names) < 3 or any(p is None for p in parts):
        return False
    if len({(p.group(1), p.group(3)) for p in parts}) != 1:  # type: ignore[union-attr]
        return False
    steps = np.diff(np.sort([int(p.group(2)) for p in parts]))  # type: ignore[union-attr]
    step = np.median(steps)
    return bool(step > 0 and np.mean(steps == step) >= 0.8)


def _match(database: Path, names: list[str], params: SfMParams) -> str:
    matcher = choose_matcher(names, params)
    options = pycolmap.FeatureMatchingOptions()
    options.use_gpu = False
    options.num_threads = params.num_threads
    n = len(names)
    per_image = params.retrieval_neighbors if matcher == "retrieval" else params.sequential_overlap
    pairs = _all_pairs(names) if matcher == "exhaustive" else n * per_image
    log.info("SfM: matching about %d image pairs (%s)", pairs, matcher)
    if matcher == "exhaustive":
        pycolmap.match_exhaustive(database, matching_options=options, device=pycolmap.Device.cpu)
    elif matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = params.sequential_overlap
        pycolmap.match_sequential(
            database, matching_options=options, pairing_options=pairing, device=pycolmap.Device.cpu
        )
    elif matcher == "retrieval":
        pairs = retrieval_pairs(database, params.retrieval_neighbors, seed=params.seed)
        log.info("retrieval: %d image pairs to match (of %d)", len(pairs), _all_pairs(names))
        imported = pycolmap.ImportedPairingOptions()
        imported.match_list_path = write_pairs(database.parent / "pairs.txt", pairs)
        pycolmap.match_image_pairs(
            database, matching_options=options, pairing_options=imported, device=pycolmap.Device.cpu
        )
    else:
        raise SfMError(
            f"unknown matcher {matcher!r}", fix="use auto, exhaustive, sequential or retrieval"
        )
    return matcher


def _all_pairs(names: list[str]) -> int:
    return len(names) * (len(names) - 1) // 2


def _map(
    database: Path, image_root: Path, out: Path, mapper: str, params: SfMParams, relaxed: bool
) -> pycolmap.Reconstruction:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    fixed = params.intrinsics is not None
    if mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions()
        options.min_model_size = params.min_model_size
        options.num_threads = params.num_threads
        options.random_seed = params.seed
        options.ba_refine_focal_length = not fixed
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = not fixed
        if relaxed:
            options.mapper.abs_pose_min_num_inliers = params.relaxed_min_inliers
        models = pycolmap.incremental_mapping(database, image_root, out, options)
    elif mapper == "global":
        options = pycolmap.GlobalPipelineOptions()
        options.min_model_size = params.min_model_size
        options.num_threads = params.num_threads
        options.random_seed = params.seed
        # The global mapper's defaults ask for the GPU; CPU here.
        options.mapper.global_positioning.use_gpu = False
        options.mapper.bundle_adjustment.ceres.use_gpu = False
        models = pycolmap.global_mapping(database, image_root, out, options)
    else:
        raise SfMError(f"unknown mapper {mapper!r}", fix="use incremental or global")
    if not models:
        return pycolmap.Reconstruction()
    # Keep the largest model; report the views it leaves out.
    return max(models.values(), key=lambda rec: rec.num_reg_images())


def _focal_spread(
    rec: pycolmap.Reconstruction, devices: dict[str, str] | None
) -> tuple[float, float] | None:
    """(min, max) focal / long edge within the device group that varies most, when it varies
    by more than 3x; None otherwise."""
    groups: dict[str, list[float]] = {}
    for i in rec.reg_image_ids():
        image = rec.images[i]
        cam = rec.cameras[image.camera_id]
        key = "" if devices is None else devices.get(image.name, "")
        groups.setdefault(key, []).append(cam.mean_focal_length() / max(cam.width, cam.height))
    worst = max(groups.values(), key=lambda v: max(v) / min(v), default=[])
    if len(worst) > 1 and max(worst) > 3.0 * min(worst):
        return min(worst), max(worst)
    return None


def check_model(
    rec: pycolmap.Reconstruction,
    names: list[str],
    params: SfMParams,
    devices: dict[str, str] | None = None,
) -> SfMReport:
    """Sanity checks: registration, reprojection error, per-view support, focal consistency.

    `devices` (image name -> camera signature, e.g. size, EXIF make/model/focal): focal
    lengths are compared only within one signature, since photos from different cameras or
    zoom settings (a Flickr collection) are expected to differ."""
    report = SfMReport(num_images=len(names))
    registered = {rec.images[i].name for i in rec.reg_image_ids()}
    report.num_registered = len(registered)
    report.unregistered = sorted(set(names) - registered)
    report.num_points3d = rec.num_points3D()
    if report.num_registered == 0:
        report.problems.append("no image registered")
        return report
    report.mean_reprojection_error = float(rec.compute_mean_reprojection_error())
    if report.mean_reprojection_error > params.max_mean_reprojection_error:
        report.problems.append(
            f"mean reprojection error {report.mean_reprojection_error:.2f} px "
            f"> {params.max_mean_reprojection_error} px"
        )
    for image_id in rec.reg_image_ids():
        image = rec.images[image_id]
        if image.num_points3D < params.min_observations_per_view:
            report.weak_views.append(image.name)
    spread = _focal_spread(rec, devices)
    if spread is not None:
        report.problems.append(
            f"focal lengths disagree ({spread[0]:.2f}-{spread[1]:.2f} x image size)"
        )
    if report.num_registered < max(2, len(names) // 2):
        report.problems.append(f"only {report.num_registered}/{len(names)} views registered")
    if report.num_registered == 2 and params.intrinsics is None:
        # One image pair barely constrains focal length and distortion: with a small baseline
        # (4 consecutive Replica frames) the estimate was 3.5x the true focal, with k = 4.9.
        report.problems.append(
            "only 2 views registered: focal length and distortion estimated from one pair are "
            "unreliable (pass sfm.intrinsics if known, or add photos from other positions)"
        )
    if report.num_points3d < params.min_observations_per_view:
        report.problems.append(f"only {report.num_points3d} 3D points triangulated")
    return report
