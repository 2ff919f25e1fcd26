"""SfM with pycolmap on the committed sample scene, and COLMAP model import (every camera,
distorted models undistorted first) on pycolmap's synthetic reconstructions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from recon.colmap_model import (
    camera_record,
    needs_undistortion,
    read_model,
    scene_from_reconstruction,
    undistort,
)
from recon.errors import InputError, SfMError
from recon.evaluate import similarity_from_centers
from recon.geometry import camera_center
from recon.sfm import SfMParams, check_model, run_sfm

SCENE = Path(__file__).resolve().parents[1] / "sample_scenes" / "room_small"


def _matrix(image: pycolmap.Image) -> np.ndarray:
    """(4, 4) cam_from_world of a COLMAP image."""
    out = np.eye(4)
    out[:3, :4] = image.cam_from_world().matrix()
    return out


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


@pytest.fixture(scope="module")
def sample_sfm(tmp_path_factory):
    """SfM on 8 consecutive views of the committed room (one shared camera)."""
    names = [f"{i:04d}.jpg" for i in range(8)]
    params = SfMParams(camera_mode="single", num_threads=2)
    work = tmp_path_factory.mktemp("sfm")
    rec, report = run_sfm(SCENE / "images", names, work, params)
    gt = json.loads((SCENE / "cameras.json").read_text())
    return names, rec, report, gt


def test_sfm_registers_every_view_with_low_error(sample_sfm):
    names, rec, report, _ = sample_sfm
    assert report.num_registered == len(names) and not report.unregistered
    assert report.passed, report.problems
    assert report.mean_reprojection_error < 1.0
    assert report.num_points3d > 500
    assert not report.weak_views


def test_sfm_poses_match_ground_truth_up_to_similarity(sample_sfm):
    names, rec, _, gt = sample_sfm
    sfm_poses = {rec.images[i].name: _matrix(rec.images[i]) for i in rec.reg_image_ids()}
    gt_poses = {f["name"]: np.asarray(f["cam_from_world"]) for f in gt["frames"]}
    src = np.array([camera_center(sfm_poses[n]) for n in names])
    dst = np.array([camera_center(gt_poses[n]) for n in names])
    scale, R, t = similarity_from_centers(src, dst)
    extent = json.loads((SCENE / "scene.json").read_text())["extent"]
    errors = np.linalg.norm(dst - (scale * src @ R.T + t), axis=1)
    assert errors.max() < 0.01 * extent
    for n in names:  # world_from_cam rotations compared in the ground-truth frame
        sfm_rot = R @ sfm_poses[n][:3, :3].T
        assert _rotation_error_deg(sfm_rot, gt_poses[n][:3, :3].T) < 1.0


def test_sfm_focal_matches_ground_truth(sample_sfm):
    _, rec, _, gt = sample_sfm
    (camera,) = rec.cameras.values()  # one shared camera, as asked
    fx_gt = np.asarray(gt["K"])[0, 0]
    assert camera.mean_focal_length() == pytest.approx(fx_gt, rel=0.02)


def test_sfm_refuses_a_single_image(tmp_path):
    with pytest.raises(SfMError, match="at least 2 images"):
        run_sfm(SCENE / "images", ["0000.jpg"], tmp_path, SfMParams())


def _synthetic(tmp_path: Path, model: str, num_rigs: int = 3) -> tuple[Path, Path]:
    """A synthetic COLMAP model (one camera per rig, 4 frames each) written to disk, and a
    folder of placeholder images of the right size (undistortion reads them)."""
    options = pycolmap.SyntheticDatasetOptions()
    options.num_rigs, options.num_cameras_per_rig, options.num_frames_per_rig = num_rigs, 1, 4
    options.num_points3D = 150
    options.camera_width, options.camera_height = 320, 240
    options.camera_model_id = getattr(pycolmap.CameraModelId, model)
    options.camera_params = [300.0, 160.0, 120.0] + ([0.08] if model == "SIMPLE_RADIAL" else [])
    rec = pycolmap.synthesize_dataset(options)
    for k, camera in enumerate(rec.cameras.values()):  # distinct intrinsics per camera
        camera.params[0] = 300.0 + 40.0 * k
    for image in rec.images.values():  # re-project the observations with the new focal
        camera = rec.cameras[image.camera_id]
        for point2d in image.points2D:
            if point2d.has_point3D():
                xyz = image.cam_from_world() * rec.points3D[point2d.point3D_id].xyz
                point2d.xy = camera.img_from_cam(xyz[None])[0]
    model_dir, image_dir = tmp_path / "model", tmp_path / "images"
    model_dir.mkdir()
    image_dir.mkdir()
    rec.write(model_dir)
    for image in rec.images.values():
        Image.new("RGB", (320, 240), (128, 100, 90)).save(image_dir / image.name)
    return model_dir, image_dir


def test_imported_model_keeps_every_camera(tmp_path):
    model_dir, image_dir = _synthetic(tmp_path, "SIMPLE_PINHOLE")
    rec = read_model(model_dir)
    assert not needs_undistortion(rec)
    scene = scene_from_reconstruction(rec, image_dir)
    assert len(scene.names) == 12
    focals = {round(scene.cameras[n].fx) for n in scene.names}
    assert focals == {300, 340, 380}
    for name in scene.names:  # observations reproject with each view's own camera
        obs, cam = scene.sparse[name], scene.cameras[name]
        xyz = scene.points_xyz[np.searchsorted(scene.points_ids, obs.point_ids)]
        cam_xyz = xyz @ scene.cam_from_world[name][:3, :3].T + scene.cam_from_world[name][:3, 3]
        np.testing.assert_allclose(cam_xyz[:, 2], obs.z, rtol=1e-9)
        uv = cam_xyz @ cam.K.T
        np.testing.assert_allclose(uv[:, :2] / uv[:, 2:], obs.uv, atol=1e-6)
    report = check_model(rec, scene.names, SfMParams())
    assert report.passed and report.num_registered == 12


def test_distorted_model_is_undistorted_before_use(tmp_path):
    model_dir, image_dir = _synthetic(tmp_path, "SIMPLE_RADIAL", num_rigs=2)
    rec = read_model(model_dir)
    assert needs_undistortion(rec)
    with pytest.raises(InputError, match="distortion model SIMPLE_RADIAL"):
        camera_record(next(iter(rec.cameras.values())))
    pinhole, root = undistort(model_dir, image_dir, tmp_path / "undistorted")
    assert not needs_undistortion(pinhole)
    scene = scene_from_reconstruction(pinhole, root, source=rec)
    assert len(scene.names) == 8
    name = scene.names[0]
    frame = scene.frame(name)  # undistorted image matches its pinhole camera
    assert frame.image.shape[:2] == (frame.camera.height, frame.camera.width)
    grid, width, height = scene.source_pixel_grid(name)
    assert (width, height) == (320, 240)
    # A 3D point seen through the pinhole camera lands, via the grid, where the distorted
    # camera of the original photo projects it.
    source = rec.images[[i for i in rec.images if rec.images[i].name == name][0]]
    obs = scene.sparse[name]
    xyz = scene.points_xyz[np.searchsorted(scene.points_ids, obs.point_ids)]
    uv_pin = obs.uv
    inside = (uv_pin[:, 0] > 1) & (uv_pin[:, 1] > 1)
    inside &= (uv_pin[:, 0] < frame.camera.width - 2) & (uv_pin[:, 1] < frame.camera.height - 2)
    iu, iv = np.floor(uv_pin[inside]).astype(int).T  # pixel whose centre is nearest-below
    looked_up = grid[iv, iu] + (uv_pin[inside] - (np.stack([iu, iv], 1) + 0.5))
    expected = rec.cameras[source.camera_id].img_from_cam(
        xyz[inside] @ source.cam_from_world().matrix()[:, :3].T
        + source.cam_from_world().matrix()[:, 3]
    )
    assert np.median(np.linalg.norm(looked_up - expected, axis=1)) < 0.2


def _two_view_model() -> tuple[pycolmap.Reconstruction, list[str]]:
    options = pycolmap.SyntheticDatasetOptions()
    options.num_rigs, options.num_cameras_per_rig, options.num_frames_per_rig = 1, 1, 2
    options.num_points3D = 100
    rec = pycolmap.synthesize_dataset(options)
    return rec, sorted(image.name for image in rec.images.values())


def test_a_two_view_model_is_flagged_unless_intrinsics_are_known():
    rec, names = _two_view_model()
    report = check_model(rec, names, SfMParams())
    assert not report.passed
    assert any("only 2 views registered" in p for p in report.problems)
    known = check_model(rec, names, SfMParams(intrinsics=[300.0, 300.0, 160.0, 120.0]))
    assert known.passed, known.problems


def test_a_model_without_points_is_flagged():
    rec, names = _two_view_model()
    for point_id in list(rec.points3D):
        rec.delete_point3D(point_id)
    report = check_model(rec, names, SfMParams(intrinsics=[300.0, 300.0, 160.0, 120.0]))
    assert report.problems == ["only 0 3D points triangulated"]
