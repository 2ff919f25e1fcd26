"""Metrics on meshes, depth and normals with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from recon.evaluate import (
    depth_metrics,
    mesh_metrics,
    normal_angular_error,
    sample_surface,
    similarity_from_centers,
)
from tests.synthetic import plane_mesh


def test_sample_surface_is_area_weighted_and_seeded():
    big = trimesh.creation.box(extents=(2, 2, 2))
    small = trimesh.creation.box(extents=(1, 1, 1))
    small.apply_translation((5, 0, 0))
    mesh = trimesh.util.concatenate([big, small])
    pts = sample_surface(mesh, 50_000, seed=3)
    share_small = np.mean(pts[:, 0] > 3)
    assert share_small == pytest.approx(6 / (24 + 6), abs=0.01)  # areas 24 and 6
    np.testing.assert_array_equal(pts, sample_surface(mesh, 50_000, seed=3))
    assert not np.array_equal(pts, sample_surface(mesh, 50_000, seed=4))


def test_identical_meshes_score_perfectly():
    gt = plane_mesh(1.0)
    m = mesh_metrics(gt, gt, num_samples=20_000)
    extent = np.linalg.norm([2, 2, 0])
    assert m.extent == pytest.approx(extent)
    assert m.chamfer < 0.005 * extent  # only sampling density remains
    assert all(f > 0.99 for f in m.fscore[1:])


def test_shifted_mesh_distances_and_fscore():
    gt = plane_mesh(1.0)
    extent = np.linalg.norm([2, 2, 0])
    shift = 0.012 * extent  # between the 1% and 2% thresholds
    pred = plane_mesh(1.0)
    pred.apply_translation((0, 0, shift))
    m = mesh_metrics(pred, gt, num_samples=20_000)
    assert m.accuracy == pytest.approx(shift, rel=0.05)
    assert m.completeness == pytest.approx(shift, rel=0.05)
    assert m.chamfer == pytest.approx(shift, rel=0.05)
    assert m.fscore[0] == 0.0 and m.fscore[1] == 0.0 and m.fscore[2] > 0.99
    summary = m.summary()
    assert summary["fscore@2%"] == m.fscore[2] and "precision@0.5%" in summary


def test_partial_mesh_hurts_completeness_not_accuracy():
    gt = plane_mesh(1.0)
    half = trimesh.Trimesh(vertices=gt.vertices, faces=gt.faces[:1], process=False)
    m = mesh_metrics(half, gt, num_samples=20_000)
    assert m.accuracy < 0.01 and m.completeness > 0.05
    assert m.precision[1] > 0.99 and m.recall[1] == pytest.approx(0.5, abs=0.05)


def test_umeyama_recovers_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    R = Rotation.from_euler("xyz", [30, -50, 120], degrees=True).as_matrix()
    scale, t = 2.7, np.array([1.0, -4.0, 0.5])
    dst = scale * src @ R.T + t
    s_est, R_est, t_est = similarity_from_centers(src, dst)
    assert s_est == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(R_est, R, atol=1e-9)
    np.testing.assert_allclose(t_est, t, atol=1e-9)
    assert np.linalg.det(R_est) == pytest.approx(1.0)
    noisy = dst + 0.01 * rng.normal(size=dst.shape)
    s_n, R_n, t_n = similarity_from_centers(src, noisy)
    assert s_n == pytest.approx(scale, rel=0.01)
    with pytest.raises(ValueError):
        similarity_from_centers(src[:2], dst[:2])


def test_umeyama_returns_rotation_for_mirrored_input():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3))
    _, R, _ = similarity_from_centers(src, src * np.array([1, 1, -1]))
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_depth_metrics_known_values():
    gt = np.full((4, 5), 2.0)
    pred = gt.copy()
    pred[0] = 2.2  # 10% too far on a quarter of the pixels
    pred[1, 0] = 3.0  # ratio 1.5: fails delta1
    pred[3, 4] = np.nan  # left out
    m = depth_metrics(pred, gt)
    assert m["n"] == 19
    assert m["abs_rel"] == pytest.approx((5 * 0.1 + 0.5) / 19)
    assert m["delta1"] == pytest.approx(18 / 19)
    assert depth_metrics(pred, gt, mask=np.zeros_like(gt, bool))["n"] == 0


def test_normal_angular_error_known_angles():
    gt = np.tile([0.0, 0.0, 1.0], (3, 1))
    a = np.radians([0.0, 10.0, 40.0])
    pred = np.stack([np.sin(a), np.zeros(3), np.cos(a)], axis=1)
    m = normal_angular_error(pred, gt)
    assert m["mean"] == pytest.approx(50 / 3)
    assert m["median"] == pytest.approx(10.0)
    assert m["within_11.25"] == pytest.approx(2 / 3)
    pred[0] = 0  # zero vectors are left out
    assert normal_angular_error(pred, gt)["n"] == 2
