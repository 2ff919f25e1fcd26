"""TSDF fusion of real posed RGB-D frames (Replica office0, 4 frames 1200x680, from
../shared/data; skipped when absent) against the dataset's ground-truth mesh.

This checks the conventions on data the project did not generate: OpenCV camera-to-world poses
inverted into cam_from_world, uint16 depth, and the principal point. Replica's cx = 599.5 for a
1200-pixel-wide image reads as if pixel centres were at integers, but its depth was rendered
through pixel centres at +0.5 (our convention) with that cx: backprojected as given, the depth
lies 0.16 mm (median) from the mesh; shifted by half a pixel, 1.3 mm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import trimesh
from PIL import Image

from recon.evaluate import point_metrics, sample_surface
from recon.fusion import FusionParams, extract_mesh, fuse_views
from recon.geometry import backproject, transform_points
from recon.records import Camera, Frame, View
from sample_scenes.render import make_raycaster
from sample_scenes.scene import load_mesh

REPLICA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd_posed" / "replica_office0"
VOXEL = 0.02  # m


def replica_views() -> list[View]:
    cam = json.loads((REPLICA / "cam_params.json").read_text())["camera"]
    K = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]], np.float64)
    poses = np.loadtxt(REPLICA / "office0" / "traj.txt")[:4].reshape(-1, 4, 4)  # c2w, OpenCV
    views = []
    for i, world_from_cam in enumerate(poses):
        results = REPLICA / "office0" / "results"
        rgb = np.asarray(Image.open(results / f"frame{i:06d}.jpg").convert("RGB"))
        depth = np.asarray(Image.open(results / f"depth{i:06d}.png"), np.float32) / cam["scale"]
        frame = Frame(
            name=f"frame{i:06d}.jpg",
            image=rgb,
            camera=Camera(K, cam["w"], cam["h"]),
            cam_from_world=np.linalg.inv(world_from_cam),
        )
        views.append(View(frame, depth, None, (depth > 0).astype(np.float32)))
    return views


def world_points(view: View, step: int = 4) -> np.ndarray:
    """(N, 3) world points of a view's valid depth, every `step`-th pixel."""
    cam = backproject(view.depth, view.frame.camera.K)[::step, ::step].reshape(-1, 3)
    cam = cam[np.all(np.isfinite(cam), axis=1)]
    return transform_points(view.frame.world_from_cam, cam)


@pytest.mark.skipif(not REPLICA.is_dir(), reason="shared data not available")
def test_replica_depth_backprojects_onto_the_ground_truth_mesh():
    vertices, triangles, _ = load_mesh(REPLICA / "office0_mesh.ply")
    raycaster = make_raycaster(vertices, triangles)
    for view in replica_views():
        points = o3d.core.Tensor(world_points(view, step=3).astype(np.float32))
        distance = raycaster.compute_distance(points).numpy()
        assert np.median(distance) < 0.0005, view.frame.name  # m; half a pixel off: 0.0013


@pytest.mark.skipif(not REPLICA.is_dir(), reason="shared data not available")
def test_fused_replica_frames_match_the_ground_truth_mesh():
    views = replica_views()
    valid = np.concatenate([v.depth[v.depth > 0] for v in views])
    params = FusionParams(
        voxel_size=VOXEL,
        weighting="uniform",
        depth_min=float(valid.min()) * 0.9,
        depth_max=float(valid.max()) * 1.1,
    )
    mesh = extract_mesh(fuse_views(views, params))
    fused = sample_surface(mesh, 100_000, seed=0)
    truth = sample_surface(trimesh.load(REPLICA / "office0_mesh.ply", process=False), 1_000_000)
    # Completeness against what the frames saw: their depth maps put into the world.
    seen = np.concatenate([world_points(v) for v in views])
    accuracy = point_metrics(fused, truth, [2 * VOXEL], 1.0)
    completeness = point_metrics(fused, seen, [2 * VOXEL], 1.0)
    assert accuracy.precision[0] > 0.95  # fused surface on the true mesh, within 2 voxels
    assert accuracy.accuracy < 1.0 * VOXEL
    assert completeness.recall[0] > 0.95  # everything the frames saw is there
    assert completeness.completeness < 1.0 * VOXEL
    # Colours come through: the fused mesh is not grey.
    assert np.ptp(np.asarray(mesh.visual.vertex_colors)[:, :3].astype(float), axis=0).min() > 50
