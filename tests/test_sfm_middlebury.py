"""SfM on real photos: the Middlebury temple ring (16 calibrated views, 22.5 degrees apart) from
../shared/data, skipped when absent. Checks registration, focal length and camera poses against
the published calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recon.evaluate import apply_similarity, similarity_from_poses
from recon.geometry import camera_center
from recon.sfm import SfMParams, run_sfm

RING = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "mv_middlebury_sparse_ring"
    / "templeSparseRing"
)


def read_calibration(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (K (3, 3) px, cam_from_world (4, 4)) from a Middlebury `*_par.txt`
    (a count line, then `name k11..k33 r11..r33 t1 t2 t3` per image, P = K [R | t])."""
    out = {}
    for line in path.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        name, *numbers = line.split()
        v = np.array(numbers, dtype=np.float64)
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = v[9:18].reshape(3, 3), v[18:21]
        out[name] = (v[:9].reshape(3, 3), pose)
    return out


@pytest.mark.skipif(not RING.is_dir(), reason="shared data not available")
def test_temple_ring_registers_every_view_with_calibrated_accuracy(tmp_path):
    calibration = read_calibration(RING / "templeSR_par.txt")
    names = sorted(calibration)
    params = SfMParams(camera_mode="single", num_threads=2)
    rec, report = run_sfm(RING, names, tmp_path, params)
    assert report.passed, report.problems
    assert report.num_registered == 16, report.unregistered
    assert report.mean_reprojection_error < 0.5

    focal = [c.mean_focal_length() for c in rec.cameras.values()]
    assert len(focal) == 1 and abs(focal[0] / calibration[names[0]][0][0, 0] - 1) < 0.03

    sfm = {}
    for image_id in rec.reg_image_ids():
        image = rec.images[image_id]
        sfm[image.name] = np.eye(4)
        sfm[image.name][:3, :4] = image.cam_from_world().matrix()
    true = {n: pose for n, (_, pose) in calibration.items()}
    similarity = similarity_from_poses(sfm, true)
    centres = apply_similarity(np.array([camera_center(sfm[n]) for n in names]), similarity)
    true_centres = np.array([camera_center(true[n]) for n in names])
    ring = np.linalg.norm(true_centres.max(axis=0) - true_centres.min(axis=0))
    assert np.max(np.linalg.norm(centres - true_centres, axis=1)) < 0.01 * ring
    _, R, _ = similarity
    for n in names:
        relative = sfm[n][:3, :3] @ R.T @ true[n][:3, :3].T  # identity when the poses agree
        angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
        assert angle < 2.0, n
