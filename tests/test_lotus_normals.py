"""Normal convention conversion (lotus_core) and the normal/depth self-check (recon)."""

from __future__ import annotations

import numpy as np
import pytest

from lotus_core.normals import lotus_to_opencv, opencv_to_lotus, unit
from recon.normal_check import normal_depth_agreement
from recon.normal_integration import central_difference_normals
from recon.records import Camera

K = np.array([[60.0, 0.0, 40.0], [0.0, 60.0, 30.0], [0.0, 0.0, 1.0]])
H, W = 60, 80


@pytest.mark.parametrize(
    "lotus, opencv",
    [
        ((0, 0, 1), (0, 0, -1)),  # wall facing the camera
        ((0, 1, 0), (0, -1, 0)),  # floor seen from above: normal points up (OpenCV -y)
        ((1, 0, 0), (-1, 0, 0)),  # surface facing left (Lotus x points left)
    ],
)
def test_lotus_to_opencv_known_vectors(lotus, opencv):
    assert np.array_equal(lotus_to_opencv(np.array(lotus, float)), np.array(opencv, float))
    assert np.array_equal(opencv_to_lotus(np.array(opencv, float)), np.array(lotus, float))


def test_conversion_round_trip_on_maps():
    n = unit(np.random.default_rng(0).normal(size=(4, 5, 3)))
    assert np.allclose(opencv_to_lotus(lotus_to_opencv(n)), n)


def plane_depth(normal: np.ndarray, offset: float) -> np.ndarray:
    """z-depth of the plane {p : n . p = offset} seen through K (pixel centres at +0.5)."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return offset / (rays @ normal)


def tilted_plane() -> tuple[np.ndarray, np.ndarray]:
    """A plane facing the camera, tilted up and to the left; OpenCV outward normal."""
    normal = unit(np.array([0.3, -0.4, -1.0]))
    return normal, plane_depth(normal, -3.0)


def test_normals_from_depth_recover_a_plane():
    normal, depth = tilted_plane()
    assert (depth > 0).all()
    est = central_difference_normals(depth, Camera(K=K, width=W, height=H))
    inner = est[1:-1, 1:-1].reshape(-1, 3)
    angles = np.degrees(np.arccos(np.clip(inner @ normal, -1, 1)))
    assert angles.max() < 0.1
    assert np.all(est[0] == 0) and np.all(est[:, -1] == 0)  # no central difference at borders


def test_agreement_accepts_opencv_and_flags_the_lotus_convention():
    normal, depth = tilted_plane()
    predicted = np.broadcast_to(normal, (H, W, 3)).copy()
    ok = normal_depth_agreement(predicted, depth * 2.5, K)  # scale does not matter
    assert ok.convention_ok and ok.median_deg < 0.1 and ok.median_negated_deg > 179
    raw = opencv_to_lotus(predicted)  # forgot to convert
    bad = normal_depth_agreement(raw, depth, K)
    assert not bad.convention_ok
    fixed = normal_depth_agreement(lotus_to_opencv(raw), depth, K)
    assert fixed.convention_ok


def test_agreement_respects_mask_and_invalid_depth():
    normal, depth = tilted_plane()
    depth[:10] = np.nan
    predicted = np.broadcast_to(normal, (H, W, 3)).copy()
    mask = np.zeros((H, W), bool)
    mask[30:40, 30:40] = True
    result = normal_depth_agreement(predicted, depth, K, mask=mask)
    assert result.num_pixels == 100
    with pytest.raises(ValueError):
        normal_depth_agreement(predicted, depth, K, mask=np.zeros((H, W), bool))


def test_block_means_see_through_per_pixel_depth_noise():
    normal, depth = tilted_plane()
    noisy = depth * (1 + 0.01 * np.random.default_rng(0).normal(size=depth.shape))
    predicted = np.broadcast_to(normal, (H, W, 3)).copy()
    per_pixel = normal_depth_agreement(predicted, noisy, K)
    blocks = normal_depth_agreement(predicted, noisy, K, step=6)
    assert blocks.convention_ok and blocks.median_deg < per_pixel.median_deg / 2
    assert blocks.num_pixels <= (H // 6) * (W // 6)
    assert normal_depth_agreement(predicted, depth, K, step=6).median_deg < 0.5  # K rescaled
