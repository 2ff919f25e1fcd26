"""COLMAP models in, our records out: undistortion, every camera, per-view sparse observations."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycolmap

from recon.errors import InputError
from recon.geometry import camera_center
from recon.images import load_rgb
from recon.records import Camera, Frame, SparseObservations

log = logging.getLogger(__name__)

PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")


@dataclass(frozen=True)
class SparseScene:
    """A registered, undistorted COLMAP model as records. Images load on demand (streaming)."""

    image_root: Path  # folder of the undistorted images the model refers to
    names: list[str]  # registered image names, sorted
    cameras: dict[str, Camera]  # name -> pinhole camera of that image
    cam_from_world: dict[str, np.ndarray]  # name -> (4, 4) world -> OpenCV camera
    sparse: dict[str, SparseObservations]  # name -> 3D points that view observes
    points_xyz: np.ndarray  # (N, 3) float64, world units
    points_rgb: np.ndarray  # (N, 3) uint8
    points_error: np.ndarray  # (N,) float64, px, mean reprojection error
    points_track_length: np.ndarray  # (N,) int
    points_ids: np.ndarray  # (N,) int64 COLMAP point3D ids (match SparseObservations.point_ids)
    # name -> the distorted camera of the original photo, when the model was undistorted
    source_cameras: dict[str, pycolmap.Camera] = field(default_factory=dict)

    def source_pixel_grid(self, name: str) -> tuple[np.ndarray, int, int] | None:
        """Where each undistorted pixel lies in the original (distorted) photo.

        Returns ((H, W, 2) float64 (u, v) in the original photo, COLMAP pixel centres; its
        width; its height), or None when the frame was not undistorted.
        """
        source = self.source_cameras.get(name)
        if source is None:
            return None
        camera = self.cameras[name]
        u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
        rays = np.stack(
            [(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1
        ).reshape(-1, 3)
        uv = source.img_from_cam(rays, check_cheirality=False)
        return uv.reshape(camera.height, camera.width, 2), int(source.width), int(source.height)

    def frame(self, name: str) -> Frame:
        image = load_rgb(self.image_root / name)
        camera = self.cameras[name]
        if image.shape[:2] != (camera.height, camera.width):
            raise InputError(
                f"image is {image.shape[1]}x{image.shape[0]} but its camera is "
                f"{camera.width}x{camera.height}",
                path=self.image_root / name,
                fix="use the images the COLMAP model was built from",
            )
        return Frame(
            name=name,
            image=image,
            camera=camera,
            cam_from_world=self.cam_from_world[name],
            sparse=self.sparse[name],
        )

    def centers(self) -> dict[str, np.ndarray]:
        """Camera centres in world coordinates, name -> (3,)."""
        return {n: camera_center(m) for n, m in self.cam_from_world.items()}


def read_model(model_dir: Path) -> pycolmap.Reconstruction:
    """Read a COLMAP model folder (binary or text)."""
    model_dir = Path(model_dir)
    candidates = [model_dir, model_dir / "sparse", model_dir / "sparse" / "0", model_dir / "0"]
    for folder in candidates:
        if (folder / "cameras.bin").is_file() or (folder / "cameras.txt").is_file():
            try:
                return pycolmap.Reconstruction(folder)
            except Exception as exc:
                raise InputError(
                    f"cannot read COLMAP model ({exc})",
                    path=folder,
                    fix="point --colmap at a folder with cameras/images/points3D (.bin or .txt)",
                ) from exc
    raise InputError(
        "no COLMAP model (cameras.bin/.txt) found",
        path=model_dir,
        fix="point --colmap at the folder holding cameras, images and points3D files",
    )


def needs_undistortion(rec: pycolmap.Reconstruction) -> bool:
    return any(cam.model.name not in PINHOLE_MODELS for cam in rec.cameras.values())


def undistort(
    rec_dir: Path, image_root: Path, out_dir: Path
) -> tuple[pycolmap.Reconstruction, Path]:
    """Undistort every image of the model into out_dir/{images,sparse}; returns (model, images)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    log.info("undistorting images (non-pinhole cameras) into %s", out_dir)
    pycolmap.undistort_images(out_dir, rec_dir, image_root)
    return pycolmap.Reconstruction(out_dir / "sparse"), out_dir / "images"


def camera_record(cam: pycolmap.Camera) -> Camera:
    if cam.model.name not in PINHOLE_MODELS:
        raise InputError(
            f"camera {cam.camera_id} has distortion model {cam.model.name}",
            fix="undistort the model first (recon.colmap_model.undistort)",
        )
    K = np.asarray(cam.calibration_matrix(), dtype=np.float64)
    return Camera(K=K, width=int(cam.width), height=int(cam.height))


def scene_from_reconstruction(
    rec: pycolmap.Reconstruction, image_root: Path, source: pycolmap.Reconstruction | None = None
) -> SparseScene:
    """Convert a pinhole model into records, with every camera and every registered image.

    source: the distorted model `rec` was undistorted from, so per-pixel data made on the
    original photos (user predictions) can be resampled onto the undistorted frames.
    """
    xyz_by_id = {pid: p.xyz for pid, p in rec.points3D.items()}
    point_ids = np.array(sorted(xyz_by_id), dtype=np.int64)
    points = [rec.points3D[int(pid)] for pid in point_ids]
    names, cameras, poses, sparse = [], {}, {}, {}
    for image_id in rec.reg_image_ids():
        image = rec.images[image_id]
        name = image.name
        names.append(name)
        cameras[name] = camera_record(rec.cameras[image.camera_id])
        cam_from_world = np.eye(4)
        cam_from_world[:3, :4] = image.cam_from_world().matrix()
        poses[name] = cam_from_world
        sparse[name] = _observations(rec, image, cam_from_world)
    return SparseScene(
        image_root=Path(image_root),
        names=sorted(names),
        cameras=cameras,
        cam_from_world=poses,
        sparse=sparse,
        points_xyz=np.array([p.xyz for p in points], dtype=np.float64).reshape(-1, 3),
        points_rgb=np.array([p.color for p in points], dtype=np.uint8).reshape(-1, 3),
        points_error=np.array([p.error for p in points], dtype=np.float64),
        points_track_length=np.array([p.track.length() for p in points], dtype=np.int64),
        points_ids=point_ids,
        source_cameras={} if source is None else _source_cameras(source),
    )


def _source_cameras(source: pycolmap.Reconstruction) -> dict[str, pycolmap.Camera]:
    return {
        source.images[i].name: source.cameras[source.images[i].camera_id]
        for i in source.reg_image_ids()
        if source.cameras[source.images[i].camera_id].model.name not in PINHOLE_MODELS
    }


def _observations(
    rec: pycolmap.Reconstruction, image: pycolmap.Image, cam_from_world: np.ndarray
) -> SparseObservations:
    uv, xyz, err, track, ids = [], [], [], [], []
    for p2d in image.points2D:
        if not p2d.has_point3D():
            continue
        point = rec.points3D[p2d.point3D_id]
        uv.append(p2d.xy)
        xyz.append(point.xyz)
        err.append(point.error)
        track.append(point.track.length())
        ids.append(p2d.point3D_id)
    xyz_arr = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    z = xyz_arr @ cam_from_world[2, :3] + cam_from_world[2, 3]
    return SparseObservations(
        uv=np.asarray(uv, dtype=np.float64).reshape(-1, 2),
        z=z,
        reprojection_error=np.asarray(err, dtype=np.float64),
        track_length=np.asarray(track, dtype=np.int64),
        point_ids=np.asarray(ids, dtype=np.int64),
    )
