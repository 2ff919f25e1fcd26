"""Sample-scene generator, ground-truth rendering and simulated predictions (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sample_scenes.__main__ import main as cli_main
from sample_scenes.generator import generate_scene
from sample_scenes.scene import load_mesh, load_scene, render_ground_truth, scene_frames
from sample_scenes.simulate import (
    LOTUS_LIKE,
    ORACLE,
    SimulationParams,
    affine_fit_errors,
    simulate_prediction,
    write_predictions,
)

COMMITTED = Path(__file__).resolve().parents[1] / "sample_scenes" / "room_small"
TINY = {"num_views": 3, "width": 64, "height": 48}


@pytest.fixture(scope="module")
def tiny_room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("room") / "scene", "room", seed=3, **TINY)


@pytest.fixture(scope="module")
def tiny_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("object") / "scene"
    return generate_scene(out, "object", seed=5, num_views=3, width=96, height=72)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) camera-frame rays K^-1 [j + 0.5, i + 0.5, 1] (COLMAP pixel centres)."""
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([jj, ii, np.ones_like(jj)], -1) @ np.linalg.inv(K).T


def test_generation_is_byte_identical(tiny_room: Path, tmp_path: Path) -> None:
    again = generate_scene(tmp_path / "again", "room", seed=3, **TINY)
    first, second = _files(tiny_room), _files(again)
    assert sorted(first) == sorted(second)
    assert all(first[name] == second[name] for name in first)
    other = generate_scene(tmp_path / "other", "room", seed=4, **TINY)
    assert _files(other)["mesh.ply"] != first["mesh.ply"]


@pytest.mark.parametrize("fixture", ["tiny_room", "tiny_object"])
def test_scene_layout(fixture: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(fixture)
    cams = json.loads((root / "cameras.json").read_text())
    meta = json.loads((root / "scene.json").read_text())
    names = [f"{k:04d}.jpg" for k in range(meta["num_views"])]
    assert [f["name"] for f in cams["frames"]] == names
    assert sorted(p.name for p in (root / "images").iterdir()) == names
    keys = ("kind", "seed", "num_views", "width", "height", "extent", "generator_version")
    assert set(meta) == set(keys)
    scene = load_scene(root)
    verts, tris, colors = load_mesh(scene.mesh_path)
    assert colors is not None and colors.shape == verts.shape and len(tris) > 0
    bbox_diag = float(np.linalg.norm(verts.max(0) - verts.min(0)))
    assert scene.extent == pytest.approx(bbox_diag, rel=1e-6)
    for frame in scene_frames(scene):
        assert frame.image.shape == (cams["height"], cams["width"], 3)
        R = frame.cam_from_world[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) == pytest.approx(1.0)


def test_ground_truth_matches_projected_mesh_vertices(tiny_object: Path) -> None:
    """Inverse depth is linear in pixel coordinates on a plane, so interpolating it bilinearly
    at the projection of a ground-plane vertex (pixel centres at +0.5) gives the vertex's 1/z."""
    scene = load_scene(tiny_object)
    verts, _, _ = load_mesh(scene.mesh_path)
    verts = verts[verts[:, 2] == 0.0]  # the ground plane (world z up), a single plane
    K = scene.camera.K
    errors, shifted = [], []
    for name in scene.names:
        depth, _ = render_ground_truth(scene, name)
        T = scene.cam_from_world[name]
        X = verts.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        X = X[X[:, 2] > 0.1]
        uv = (X @ K.T)[:, :2] / X[:, 2:3]
        for offset, out in ((0.5, errors), (0.0, shifted)):
            inv = _bilinear_inverse_depth(depth, uv[:, 0] - offset, uv[:, 1] - offset)
            out.append(np.abs(inv * X[:, 2] - 1.0))  # NaN off the image or next to a miss
    errors_all, shifted_all = np.concatenate(errors), np.concatenate(shifted)
    visible = np.nan_to_num(errors_all, nan=1.0) < 1e-2  # the rest is occluded or off-image
    assert visible.sum() > 50
    assert np.median(errors_all[visible]) < 1e-5
    # the half-pixel convention matters: pixel-corner sampling is clearly worse
    assert np.nanmedian(shifted_all[visible]) > 5 * np.median(errors_all[visible])


def _bilinear_inverse_depth(depth: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1/depth interpolated at array coordinates (x = col, y = row); NaN near misses/borders."""
    h, w = depth.shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ok = (x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1)
    x0, y0, fx, fy = x0[ok], y0[ok], (x - np.floor(x))[ok], (y - np.floor(y))[ok]
    with np.errstate(divide="ignore"):
        inv = np.where(depth > 0, 1.0 / depth, np.nan)
    val = (
        inv[y0, x0] * (1 - fx) * (1 - fy)
        + inv[y0, x0 + 1] * fx * (1 - fy)
        + inv[y0 + 1, x0] * (1 - fx) * fy
        + inv[y0 + 1, x0 + 1] * fx * fy
    )
    out = np.full(len(x), np.nan)
    out[ok] = val
    return out


def test_ground_truth_normals_face_camera_and_match_depth(tiny_object: Path) -> None:
    scene = load_scene(tiny_object)
    cam = scene.camera
    rays = _pixel_rays(cam.K, cam.width, cam.height)
    depth, normal = render_ground_truth(scene, scene.names[0])
    hit = depth > 0
    assert hit.any() and (~hit).any()  # objects and ground, plus sky
    np.testing.assert_allclose(np.linalg.norm(normal[hit], axis=-1), 1.0, atol=1e-5)
    assert np.all(normal[~hit] == 0)
    assert np.all(np.sum(normal * rays, axis=-1)[hit] < 0)
    # normals from back-projected depth (cross product of neighbour differences)
    P = rays * depth[..., None]
    dx, dy = P[1:-1, 2:] - P[1:-1, :-2], P[2:, 1:-1] - P[:-2, 1:-1]
    est = np.cross(dx, dy)
    est /= np.maximum(np.linalg.norm(est, axis=-1, keepdims=True), 1e-12)
    inner = hit[1:-1, 1:-1] & hit[1:-1, 2:] & hit[1:-1, :-2] & hit[2:, 1:-1] & hit[:-2, 1:-1]
    cos = np.abs(np.sum(est * normal[1:-1, 1:-1], axis=-1))[inner]
    assert np.median(cos) > 0.999


def test_committed_scene_layout() -> None:
    scene = load_scene(COMMITTED)
    meta = json.loads((COMMITTED / "scene.json").read_text())
    assert meta["kind"] == "room" and meta["generator_version"] == 1
    assert (COMMITTED / "README.md").is_file()
    assert len(scene.names) == meta["num_views"] >= 10
    assert sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file()) < 5 * 2**20
    for name in scene.names[:: max(1, len(scene.names) // 4)]:
        depth, normal = render_ground_truth(scene, name)
        assert depth.shape == (scene.camera.height, scene.camera.width)
        assert np.all(depth > 0)  # inside a closed room every ray hits a surface
        assert depth.max() < scene.extent


def _ground_truth(root: Path, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    scene = load_scene(root)
    return render_ground_truth(scene, scene.names[index])


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_oracle_is_exactly_affine(space: str, tiny_object: Path) -> None:
    depth, normal = _ground_truth(tiny_object)
    pred = simulate_prediction(depth, normal, space, np.random.default_rng(0), ORACLE)
    valid = depth > 0
    assert np.all(np.isnan(pred.values[~valid])) and np.all(np.isfinite(pred.values[valid]))
    assert np.all(pred.normal[~valid] == 0)
    target = depth[valid] if space == "depth" else 1.0 / depth[valid]
    A = np.column_stack([pred.values[valid], np.ones(valid.sum())])
    coef, *_ = np.linalg.lstsq(A, target, rcond=None)
    np.testing.assert_allclose(A @ coef, target, rtol=1e-5)
    np.testing.assert_allclose(pred.normal[valid], normal[valid], atol=1e-6)
    assert pred.space == space and pred.producer == "simulated:oracle"


def test_lotus_like_stays_in_calibrated_band() -> None:
    scene = load_scene(COMMITTED)
    for space in ("depth", "disparity"):
        abs_rel, normal_deg = [], []
        for k, name in enumerate(scene.names[:4]):
            depth, normal = render_ground_truth(scene, name)
            pred = simulate_prediction(depth, normal, space, np.random.default_rng([1, k]))
            err = affine_fit_errors(pred, depth, normal)
            abs_rel.append(err["abs_rel"])
            normal_deg.append(err["normal_deg"])
            assert 0.0 <= pred.confidence.min() and pred.confidence.max() <= 1.0
        assert 0.03 < np.mean(abs_rel) < 0.07, (space, abs_rel)
        assert 7.0 < np.mean(normal_deg) < 13.0, (space, normal_deg)


def test_confidence_dips_at_depth_edges(tiny_object: Path) -> None:
    depth, normal = _ground_truth(tiny_object)
    pred = simulate_prediction(depth, normal, "depth", np.random.default_rng(0), LOTUS_LIKE)
    gy, gx = np.gradient(np.where(depth > 0, depth, np.nan))
    rel_grad = np.hypot(gx, gy) / depth
    edges = np.nan_to_num(rel_grad) > 0.1
    smooth = (depth > 0) & (np.nan_to_num(rel_grad, nan=1.0) < 0.01)
    assert edges.any() and smooth.any()
    assert pred.confidence[edges].mean() < pred.confidence[smooth].mean()
    assert np.all(pred.confidence[depth <= 0] == 0)


def test_outliers_replace_the_requested_fraction(tiny_object: Path) -> None:
    depth, normal = _ground_truth(tiny_object)
    params = SimulationParams(outlier_fraction=0.1)
    clean = simulate_prediction(depth, normal, "disparity", np.random.default_rng(2), ORACLE)
    noisy = simulate_prediction(depth, normal, "disparity", np.random.default_rng(2), params)
    valid = depth > 0
    changed = (clean.values != noisy.values) & valid
    assert changed.sum() == pytest.approx(0.1 * valid.sum(), abs=2)


def test_write_predictions_round_trips_through_file_predictor(
    tiny_room: Path, tmp_path: Path
) -> None:
    from pipelines.predictors import FilePredictor

    out = write_predictions(tiny_room, tmp_path / "pred", space="disparity", seed=7)
    again = write_predictions(tiny_room, tmp_path / "pred2", space="disparity", seed=7)
    scene = load_scene(tiny_room)
    frames = scene_frames(scene)
    predictor = FilePredictor(out)
    assert predictor.space == "disparity"
    loaded = predictor.predict(frames)
    repeat = FilePredictor(again).predict(frames)
    for k, (frame, pred) in enumerate(zip(frames, loaded)):
        depth, normal = render_ground_truth(scene, frame.name)
        rng = np.random.default_rng([7, k])
        expected = simulate_prediction(depth, normal, "disparity", rng, LOTUS_LIKE)
        np.testing.assert_array_equal(pred.values, expected.values)
        np.testing.assert_array_equal(pred.values, repeat[k].values)
        np.testing.assert_allclose(pred.normal, expected.normal, atol=1e-6)
        np.testing.assert_array_equal(pred.confidence, expected.confidence)
        assert pred.space == "disparity"


def test_cli_generate_and_simulate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scene_dir, pred_dir = tmp_path / "scene", tmp_path / "pred"
    args = ["generate", "--kind", "object", "--views", "2", "--width", "32", "--height", "24"]
    assert cli_main([*args, "-o", str(scene_dir)]) == 0
    assert cli_main(["simulate", str(scene_dir), "-o", str(pred_dir), "--oracle"]) == 0
    assert sorted(p.name for p in pred_dir.iterdir()) == ["0000.npz", "0001.npz"]
    assert cli_main(["simulate", str(tmp_path / "missing"), "-o", str(pred_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_cli_training_data_is_read_by_lotus_training(tmp_path: Path) -> None:
    """`python -m sample_scenes training-data` writes the folders `lotus_core.training` reads."""
    from lotus_core.training.data import load_dataset

    out = tmp_path / "train"
    args = ["training-data", "-o", str(out), "--seeds", "3", "--views", "2", "--size", "32x24"]
    assert cli_main(args) == 0
    assert sorted(p.name for p in (out / "depth").iterdir()) == [
        "room00003_000.npy",
        "room00003_001.npy",
    ]
    depth = np.load(out / "depth" / "room00003_000.npy")
    normal = np.load(out / "normal" / "room00003_000.npy")
    ok = np.isfinite(depth) & (depth > 0)
    assert depth.shape == (24, 32) and ok.mean() > 0.9
    assert np.allclose(np.linalg.norm(normal[ok], axis=-1), 1.0, atol=1e-3)
    data = load_dataset([out], "depth")
    assert {k: tuple(v.shape) for k, v in data.items()} == {
        k: (2, 3, 24, 32) for k in ("image", "depth", "normal")
    }
    stamp = (out / "depth" / "room00003_000.npy").stat().st_mtime_ns
    assert cli_main(args) == 0  # a finished scene is skipped on rerun
    assert (out / "depth" / "room00003_000.npy").stat().st_mtime_ns == stamp
