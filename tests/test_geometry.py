"""recon.geometry: the one ray builder and backprojection, and `project` as their inverse."""

from __future__ import annotations

import numpy as np

from recon.geometry import backproject, camera_rays, project


def test_backprojection_uses_colmap_pixel_centres():
    K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])
    pts = backproject(np.full((60, 80), 2.0), K)
    assert np.allclose(pts[0, 0], [2 * (0.5 - 40) / 100, 2 * (0.5 - 30) / 100, 2.0])
    assert np.allclose(pts[30, 40], [2 * 0.5 / 100, 2 * 0.5 / 100, 2.0])


def test_invalid_depth_backprojects_to_nan():
    K = np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])
    depth = np.full((30, 40), 1.5)
    depth[3, 4], depth[5, 6] = 0.0, np.nan
    pts = backproject(depth, K)
    assert np.isnan(pts[3, 4]).all() and np.isnan(pts[5, 6]).all()
    assert np.isfinite(np.delete(pts.reshape(-1, 3), [3 * 40 + 4, 5 * 40 + 6], axis=0)).all()


def test_project_inverts_backproject_with_and_without_skew():
    rng = np.random.default_rng(0)
    h, w = 24, 32
    depth = rng.uniform(0.5, 4.0, size=(h, w))
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    for skew in (0.0, 7.5):
        K = np.array([[80.0, skew, 15.0], [0, 70.0, 11.0], [0, 0, 1]])
        uv, z = project(backproject(depth, K), K)
        assert np.allclose(uv[..., 0], u) and np.allclose(uv[..., 1], v)
        assert np.allclose(z, depth)


def test_rays_match_the_inverse_of_K():
    K = np.array([[80.0, 3.0, 15.0], [0, 70.0, 11.0], [0, 0, 1]])
    rays = camera_rays(K, 4, 5)
    u, v = np.meshgrid(np.arange(5) + 0.5, np.arange(4) + 0.5)
    expected = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    assert np.allclose(rays, expected)
