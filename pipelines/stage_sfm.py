"""Stage 2: images -> registered, undistorted pinhole COLMAP model (our SfM or the user's)."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import shutil
from pathlib import Path

import pycolmap

from pipelines.workspace import Stage
from recon.atomic import write_json
from recon.colmap_model import (
    SparseScene,
    needs_undistortion,
    read_model,
    scene_from_reconstruction,
    undistort,
)
from recon.errors import InputError, SfMError
from recon.images import ImageSet
from recon.sfm import SfMParams, SfMReport, check_model, match_colmap_logging, run_sfm

log = logging.getLogger(__name__)


def reconstruct(
    image_set: ImageSet,
    stage: Stage,
    params: SfMParams,
    colmap_dir: Path | None = None,
    photo_dir: Path | None = None,
) -> SparseScene:
    """Run SfM (or import `colmap_dir`), undistort, and return the scene records."""
    match_colmap_logging()
    if stage.done:
        return load_sparse_scene(stage)
    out = stage.begin()
    if colmap_dir is not None:
        # A user model refers to the original photos, not our normalised copies.
        image_root = Path(photo_dir) if photo_dir else image_set.root
        rec = read_model(colmap_dir)
        check_imported_model(rec, Path(colmap_dir), image_root)
        report = check_model(rec, sorted(rec.images[i].name for i in rec.images), params)
        report.mapper = f"imported:{colmap_dir}"
    else:
        image_root = image_set.root
        if params.camera_mode == "auto" and image_set.single_device():
            # One device, one camera: shared intrinsics are better constrained (DESIGN.md).
            params = dataclasses.replace(params, camera_mode="single")
            log.info("all photos share size and EXIF camera: one shared SfM camera")
        check_free_space(out, image_set, params)
        try:
            rec, report = run_sfm(
                image_root, image_set.names, out / "colmap", params, image_set.devices
            )
        except SfMError as err:  # name the user's folder, not our copies of it
            raise SfMError(err.message, path=photo_dir or err.path, fix=err.fix) from err
    _write_model(rec, out / "model_raw")
    source = None
    if needs_undistortion(rec):
        source = rec
        rec, image_root = undistort(out / "model_raw", image_root, out / "undistorted")
    _write_model(rec, out / "model")
    scene = scene_from_reconstruction(rec, image_root, source)
    _log_report(report, scene)
    write_json(out / "sfm_report.json", dataclasses.asdict(report))
    write_json(out / "scene.json", {"image_root": str(image_root)})
    stage.finish(
        {
            "num_registered": report.num_registered,
            "num_images": report.num_images,
            "mean_reprojection_error": report.mean_reprojection_error,
        }
    )
    return scene


def check_imported_model(rec: pycolmap.Reconstruction, colmap_dir: Path, photos: Path) -> None:
    """A --colmap model must have registered images, each a file in the photo folder."""
    names = sorted(rec.images[i].name for i in rec.images if rec.images[i].has_pose)
    if not names:
        raise SfMError(
            "the COLMAP model has no registered images",
            path=colmap_dir,
            fix="point --colmap at a model with registered images, or drop --colmap to run SfM",
        )
    missing = [n for n in names if not (photos / n).is_file()]
    if missing:
        raise InputError(
            f"the COLMAP model names {len(missing)} of its {len(names)} photos that are not in "
            f"{photos} (e.g. {missing[0]})",
            path=colmap_dir,
            fix="pass the photo folder the model was built from",
        )


def database_bytes(image_set: ImageSet, params: SfMParams) -> float:
    """Rough size (bytes) of COLMAP's feature database for these images.

    Per image min(max_num_features, pixels / 40) SIFT features of 152 bytes (keypoint and
    descriptor); per matched pair about half of them matched, 16 bytes each (matches and
    verified inliers). Measured: 2.0 MB for 6 images of 320x240 px (estimate 2.0 MB).
    """
    n = len(image_set.names)
    features = 0.0
    for name in image_set.names:
        w, h = image_set.sizes.get(name, (params.max_image_size, params.max_image_size))
        scale = min(1.0, params.max_image_size / max(w, h))
        features += min(params.max_num_features, w * h * scale * scale / 40)
    mean = features / max(n, 1)
    exhaustive = params.matcher == "exhaustive" or (
        params.matcher == "auto" and n <= params.exhaustive_max_images
    )
    pairs = n * (n - 1) / 2 if exhaustive else n * params.sequential_overlap
    return features * 152 + pairs * mean * 0.5 * 16


def check_free_space(out: Path, image_set: ImageSet, params: SfMParams) -> None:
    """Refuse to start SfM on a disk that cannot hold its database: COLMAP aborts the whole
    process (a C++ stack dump, exit 134) when SQLite finds the disk full, and no Python code
    can turn that into a message afterwards."""
    needed = 1.5 * database_bytes(image_set, params)  # plus the models and undistorted copies
    free = shutil.disk_usage(out).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"No space left for SfM (needs about {needed / 2**20:.1f} MB, "
            f"{free / 2**20:.1f} MB free)",
            str(out),
        )


def _write_model(rec: pycolmap.Reconstruction, folder: Path) -> None:
    """Write a model to a temp folder, then rename: never a half-written model."""
    tmp = folder.with_name(folder.name + ".tmp-model")
    for path in (tmp, folder):
        if path.exists():
            shutil.rmtree(path)
    tmp.mkdir(parents=True)
    rec.write(tmp)
    tmp.rename(folder)


def _log_report(report: SfMReport, scene: SparseScene) -> None:
    log.info(
        "SfM: %d/%d images registered, %d points, mean reprojection error %.2f px (%s)",
        report.num_registered,
        report.num_images,
        report.num_points3d,
        report.mean_reprojection_error,
        report.mapper,
    )
    if report.unregistered:
        log.warning("not registered (left out): %s", ", ".join(report.unregistered))
    if report.weak_views:
        log.warning("views with few 3D points: %s", ", ".join(report.weak_views))
    for problem in report.problems:
        log.warning("SfM check: %s", problem)
    if not scene.names:
        raise SfMError("the model has no registered images", fix="check the photos' overlap")


def load_sparse_scene(stage: Stage) -> SparseScene:
    info = json.loads((stage.path / "scene.json").read_text())
    rec = pycolmap.Reconstruction(stage.path / "model")
    source = None
    if (stage.path / "undistorted").is_dir():
        source = pycolmap.Reconstruction(stage.path / "model_raw")
    return scene_from_reconstruction(rec, Path(info["image_root"]), source)


def load_sfm_report(stage: Stage) -> dict:
    return json.loads((stage.path / "sfm_report.json").read_text())
