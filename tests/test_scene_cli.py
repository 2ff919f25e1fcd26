"""End to end through the CLI on the committed sample scene: real SfM, alignment, guided TSDF,
export, scored against the scene's ground-truth mesh."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from pipelines.cli import main
from sample_scenes import ORACLE, load_scene, render_ground_truth, write_predictions
from sample_scenes.scoring import SceneScorer, to_ground_truth_frame

SCENE = Path(__file__).resolve().parents[1] / "sample_scenes" / "room_small"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CLI run on the committed scene with exactly affine (oracle) disparity predictions:
    what is left of the error is SfM, alignment, fusion and meshing."""
    root = tmp_path_factory.mktemp("scene_cli")
    preds = write_predictions(SCENE, root / "pred", space="disparity", seed=0, params=ORACLE)
    out = root / "out"
    code = main(["scene", str(SCENE / "images"), "-o", str(out), "--predictions", str(preds)])
    return code, out


@pytest.fixture(scope="module")
def scored(run):
    _, out = run
    scene = load_scene(SCENE)
    mesh = trimesh.load(out / "mesh.ply", process=False)
    mesh_gt, scale = to_ground_truth_frame(mesh, out / "cameras.json", scene)
    return SceneScorer(scene, count=100_000).metrics(mesh_gt, count=60_000), scene, scale


def test_scene_command_writes_every_output(run):
    code, out = run
    assert code == 0
    for name in ("mesh.ply", "mesh.glb", "mesh.obj", "cameras.json", "sparse_points.ply"):
        assert (out / name).stat().st_size > 0, name
    for name in ("report.json", "config.yaml", "log.txt"):
        assert (out / name).is_file(), name
    glb = trimesh.load(out / "mesh.glb", force="mesh")
    ply = trimesh.load(out / "mesh.ply", process=False)
    assert len(glb.faces) == len(ply.faces) > 1000
    assert ply.visual.vertex_colors.shape == (len(ply.vertices), 4)


def test_report_records_sfm_and_every_view_alignment(run):
    _, out = run
    report = json.loads((out / "report.json").read_text())
    assert report["sfm"]["num_registered"] == report["sfm"]["num_images"] == 18
    assert report["sfm"]["mean_reprojection_error"] < 1.0
    assert len(report["alignment"]) == 18
    cameras = json.loads((out / "cameras.json").read_text())["images"]
    assert sorted(cameras) == [f"{i:04d}.jpg" for i in range(18)]


def test_mesh_lands_on_the_ground_truth_surface(scored):
    metrics, scene, scale = scored
    # Nearly every reconstructed point within 1% of the room's extent (8 cm) of the true
    # surface, and most of the seen surface covered within 2%.
    assert metrics["P@1%"] > 0.95
    assert metrics["accuracy"] < 0.01 * scene.extent
    assert metrics["R@2%_seen"] > 0.9
    assert metrics["F@1%_seen"] > 0.9
    assert 0.1 < scale < 10  # SfM scale is arbitrary but finite


def test_mesh_vertices_are_in_the_sfm_frame_near_the_sparse_points(run):
    _, out = run
    mesh = trimesh.load(out / "mesh.ply", process=False)
    points = trimesh.load(out / "sparse_points.ply").vertices
    lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    margin = 0.2 * (hi - lo)
    inside = np.all((mesh.vertices > lo - margin) & (mesh.vertices < hi + margin), axis=1)
    assert inside.mean() > 0.95


def test_priors_command_reuses_the_scene_model(run, tmp_path):
    """`priors` with --colmap (the scene run's SfM model) and the same predictions: per-view
    metric depth that matches the ground truth up to the SfM scale."""
    _, out = run
    model = next((out / "work").glob("sfm-*")) / "model_raw"
    preds = out.parent / "pred"
    dest = tmp_path / "priors"
    args = ["priors", str(SCENE / "images"), "-o", str(dest), "--format", "npz"]
    args += ["--colmap", str(model), "--predictions", str(preds)]
    assert main(args) == 0
    scene = load_scene(SCENE)
    ratios = []
    for name in ("0000.jpg", "0009.jpg"):
        view = np.load(dest / "npz" / "views" / f"{Path(name).stem}.npz")
        depth = view["depth"]
        # Undistortion of the SfM camera (k ~ 1e-3) trims a pixel row/column; the rest of
        # the grid moves by well under a pixel, which the robust bound below absorbs.
        gt = render_ground_truth(scene, name)[0][: depth.shape[0], : depth.shape[1]]
        both = (depth > 0) & (gt > 0)
        ratio = gt[both] / depth[both]
        assert np.percentile(np.abs(ratio / np.median(ratio) - 1), 90) < 0.02
        ratios.append(np.median(ratio))
    assert ratios[0] == pytest.approx(ratios[1], rel=0.01)  # one scale for the whole scene


def test_an_ordinary_run_corrects_the_shape_of_every_aligned_view(run, tmp_path):
    """The shipped preset keeps the per-view shape correction: with Lotus-like predictions
    (smooth warp, noise) every aligned view of a plain `scene` run is corrected, and the mesh is
    closer to the truth than with the correction switched off."""
    _, out = run
    from sample_scenes import LOTUS_LIKE

    model = next((out / "work").glob("sfm-*")) / "model_raw"
    preds = write_predictions(SCENE, tmp_path / "pred", "disparity", 0, LOTUS_LIKE)
    base = ["scene", str(SCENE / "images"), "--colmap", str(model), "--predictions", str(preds)]
    assert main(["-q", *base, "-o", str(tmp_path / "default")]) == 0
    off = ["--set", "align.refine=null"]
    assert main(["-q", *base, "-o", str(tmp_path / "off"), *off]) == 0
    report = json.loads((tmp_path / "default" / "report.json").read_text())
    aligned = {n: a for n, a in report["alignment"].items() if a["status"] == "ok"}
    assert len(aligned) >= 16
    assert all(a["smooth_correction"] for a in aligned.values()), report["alignment"]
    scene = load_scene(SCENE)
    scorer = SceneScorer(scene, count=60_000)
    f1 = {}
    for tag in ("default", "off"):
        mesh = trimesh.load(tmp_path / tag / "mesh.ply", process=False)
        mesh_gt, _ = to_ground_truth_frame(mesh, tmp_path / tag / "cameras.json", scene)
        f1[tag] = scorer.metrics(mesh_gt, count=40_000)["F@1%_seen"]
    assert f1["default"] > f1["off"] + 0.02, f1
