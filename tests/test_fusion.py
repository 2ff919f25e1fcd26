"""Normal-guided TSDF fusion on synthetic scenes with ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recon.consistency import ViewSource, fusion_views
from recon.errors import FusionError
from recon.evaluate import normal_angular_error, point_metrics, sample_surface
from recon.fusion import (
    ConsistencyParams,
    FusionParams,
    WeightParams,
    extract_mesh,
    fuse_views,
    scene_fusion_params,
    view_weights,
)
from recon.geometry import depth_edges, normals_from_depth, viewing_cosine
from recon.records import View
from tests.synthetic import observed_points, plane_scene, room_scene, smooth_noise

VOXEL = 0.04


@pytest.fixture(scope="module")
def room():
    return room_scene(n_views=10, width=128, height=96)


@pytest.fixture(scope="module")
def plane():
    return plane_scene(width=96, height=72)


def gt_views(scene, depths=None, weights: WeightParams | None = None):
    depths = depths or [v.depth for v in scene.views]
    weights = weights or WeightParams()
    return [
        View(v.frame, d.astype(np.float32), v.normal,
             view_weights(d, v.normal, v.frame.camera.K, None, weights))
        for v, d in zip(scene.views, depths)
    ]  # fmt: skip


def chamfer_in_voxels(mesh, scene, voxel):
    gt = observed_points(scene)
    extent = float(np.linalg.norm(np.ptp(gt, axis=0)))
    m = point_metrics(sample_surface(mesh, 40_000), gt, (0.01,), extent)
    return m.chamfer / voxel, m


def test_normals_from_depth_match_ground_truth(room):
    view = room.views[0]
    normal = normals_from_depth(view.depth, view.frame.camera.K)
    interior = ~depth_edges(view.depth, 0.02)
    err = normal_angular_error(normal, view.normal, interior)
    assert err["median"] < 1.0 and err["within_11.25"] > 0.95


def test_fused_ground_truth_depth_lands_on_the_surface(room):
    params = replace(scene_fusion_params(room.frames, None, [v.depth for v in room.views]),
                     voxel_size=VOXEL)  # fmt: skip
    volume = fuse_views(iter(gt_views(room)), params)
    assert volume.num_views == len(room.views) and not volume.skipped
    mesh = extract_mesh(volume)
    chamfer, metrics = chamfer_in_voxels(mesh, room, VOXEL)
    assert chamfer < 1.5
    assert metrics.fscore[0] > 0.95


def test_guided_no_worse_than_uniform_on_clean_depth(room):
    params = FusionParams(voxel_size=VOXEL, depth_min=0.1, depth_max=10.0)
    views = gt_views(room)
    guided, _ = chamfer_in_voxels(extract_mesh(fuse_views(views, params)), room, VOXEL)
    uniform_params = replace(params, weighting="uniform")
    uniform, _ = chamfer_in_voxels(extract_mesh(fuse_views(views, uniform_params)), room, VOXEL)
    assert guided <= uniform * 1.05 + 0.02


def test_guided_beats_uniform_at_grazing_angles(plane):
    """Depth noise that grows at grazing angles: guided weights trust the frontal views."""
    rng = np.random.default_rng(0)
    depths = []
    for v in plane.views:
        cos = np.clip(viewing_cosine(v.normal, v.frame.camera.K), 0.05, 1)
        depths.append(v.depth * (1 + 0.004 / cos**2 * smooth_noise(v.depth.shape, 3, rng)))
    views = gt_views(plane, depths)
    voxel = 0.03
    params = FusionParams(voxel_size=voxel, depth_min=0.1, depth_max=20.0)
    errors = {}
    for mode in ("guided", "uniform"):
        pts = sample_surface(
            extract_mesh(fuse_views(views, replace(params, weighting=mode))), 30_000
        )
        on_plane = np.all(np.abs(pts[:, :2]) <= 2.0, axis=1)
        errors[mode] = np.abs(pts[on_plane, 2]).mean() / voxel  # distance to the plane z = 0
    assert errors["guided"] < 0.8 * errors["uniform"], errors


def test_view_weights_angle_confidence_agreement(plane):
    frontal, grazing = plane.views[0], plane.views[-1]
    wp = WeightParams()
    w_f = view_weights(frontal.depth, frontal.normal, frontal.frame.camera.K, None, wp)
    w_g = view_weights(grazing.depth, grazing.normal, grazing.frame.camera.K, None, wp)
    assert np.median(w_f[w_f > 0]) > 0.9 and np.median(w_g[w_g > 0]) < 0.5
    assert np.all(w_g[~np.isfinite(grazing.depth)] == 0)
    half = np.full(frontal.depth.shape, 0.5, np.float32)
    w_c = view_weights(frontal.depth, frontal.normal, frontal.frame.camera.K, half, wp)
    np.testing.assert_allclose(w_c, 0.5 * w_f, atol=1e-6)
    tilted = frontal.normal.copy()
    tilted[..., 0] += 0.8  # a predicted normal ~40 deg off the depth's normal
    tilted /= np.linalg.norm(tilted, axis=-1, keepdims=True)
    w_t = view_weights(frontal.depth, tilted, frontal.frame.camera.K, None, wp)
    assert np.median(w_t[w_t > 0]) < 0.5 * np.median(w_f[w_f > 0])


def test_scene_fusion_params_derives_and_keeps(room):
    depths = [v.depth for v in room.views]
    points = observed_points(room, step=8)
    p = scene_fusion_params(room.frames, points, depths, FusionParams(voxel_divisions=128))
    extent = np.linalg.norm(np.percentile(points, 99, axis=0) - np.percentile(points, 1, axis=0))
    assert p.voxel_size == pytest.approx(extent / 128, rel=1e-6)
    # never finer than one pixel's footprint at the median depth
    fine = scene_fusion_params(room.frames, points, depths, FusionParams(voxel_divisions=10**5))
    footprint = np.nanmedian(np.stack(depths)) / room.frames[0].camera.fx
    assert fine.voxel_size == pytest.approx(footprint, rel=0.05)
    all_z = np.concatenate([d[np.isfinite(d)] for d in depths])
    inside = np.mean((all_z >= p.depth_min) & (all_z <= p.depth_max))
    assert inside > 0.98
    kept = scene_fusion_params(room.frames, points, depths, FusionParams(voxel_size=0.1))
    assert kept.voxel_size == 0.1 and kept.depth_max == p.depth_max
    no_points = scene_fusion_params(room.frames, None, None)  # sparse z and focal only
    assert no_points.voxel_size > 0 and no_points.depth_max > no_points.depth_min > 0


def test_fusion_errors(room):
    with pytest.raises(FusionError):
        fuse_views(gt_views(room)[:1], FusionParams())  # no voxel size
    blank = [replace(v, depth=np.full_like(v.depth, np.nan)) for v in gt_views(room)[:2]]
    with pytest.raises(FusionError):
        fuse_views(blank, FusionParams(voxel_size=VOXEL))
    volume = fuse_views(gt_views(room)[:1], FusionParams(voxel_size=VOXEL))
    with pytest.raises(FusionError):
        extract_mesh(volume, weight_threshold=1e6)


def test_fused_colour_is_the_image_colour(plane):
    colour = np.array([200, 100, 50], np.uint8)
    views = []
    for v in gt_views(plane)[:4]:
        frame = replace(v.frame, image=np.broadcast_to(colour, v.frame.image.shape).copy())
        views.append(replace(v, frame=frame))
    mesh = extract_mesh(fuse_views(views, FusionParams(voxel_size=0.05)))
    rgb = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(int)
    assert np.abs(np.median(rgb, axis=0) - colour).max() <= 1


def consistency_masks(views, neighbors: int, rel_tol: float) -> list[np.ndarray]:
    """(H, W) bool per view: pixels the pipeline's check (`fusion_views`) keeps."""
    params = FusionParams(consistency=ConsistencyParams(True, neighbors, rel_tol, 1))
    return [v.depth > 0 for v in fusion_views(ViewSource.of_views(views), params)]


def test_consistency_masks_drop_a_view_that_disagrees(room):
    views = gt_views(room)
    masks = consistency_masks(views, neighbors=4, rel_tol=0.02)
    for view, mask in zip(views, masks):
        valid = np.isfinite(view.depth)
        assert mask[valid].mean() > 0.93 and not mask[~valid].any()  # occlusions: a few drop
    for factor in (0.8, 1.2):  # a badly scaled view, in front of or behind the surface
        bad = list(views)
        bad[3] = replace(views[3], depth=views[3].depth * factor)
        masks = consistency_masks(bad, neighbors=4, rel_tol=0.02)
        assert masks[3].mean() < 0.3
        kept = [
            m[np.isfinite(v.depth)].mean() for i, (v, m) in enumerate(zip(bad, masks)) if i != 3
        ]
        assert min(kept) > 0.75  # views checked only by the bad one lose some
