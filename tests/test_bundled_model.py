"""The bundled small Lotus models (models/lotus-*-tiny): what the offline demo runs.

They were trained on generated rooms (seeds 1-119) by `lotus_core.train`; the committed sample
scene (room seed 0) was left out of their Lotus-stage training. Accuracy on held-out seeds is
measured by bench/lotus_heldout.py; these tests guard against a broken or swapped model and
run the README demo end to end on the sample scene, scoring the mesh against ground truth.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lotus_core import LotusModel
from lotus_core.training.metrics import depth_errors, normal_angles, normal_summary
from sample_scenes import load_scene, render_ground_truth, scene_frames

ROOT = Path(__file__).resolve().parents[1]
DEPTH, NORMAL = ROOT / "models" / "lotus-depth-tiny", ROOT / "models" / "lotus-normal-tiny"
SCENE = ROOT / "sample_scenes" / "room_small"
RES = 128  # the resolution the models were trained at (long edge)

pytestmark = pytest.mark.skipif(
    not (DEPTH / "unet").is_dir() or not (NORMAL / "unet").is_dir(),
    reason="bundled models not present",
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOTUS_RECON_CACHE", str(tmp_path_factory.mktemp("lotus_cache")))


@pytest.fixture(scope="module")
def views():
    scene = load_scene(SCENE)
    frames = scene_frames(scene)[::3]
    truth = [render_ground_truth(scene, f.name) for f in frames]
    return [f.image for f in frames], truth


def test_bundled_depth_model_predicts_the_sample_scene(views):
    images, truth = views
    model = LotusModel.load(DEPTH, device="cpu", dtype="float32", processing_res=RES)
    assert (model.info.task, model.info.space, model.info.variant) == ("depth", "depth", "d")
    results = model.predict(images)
    errors = [depth_errors(r.values, depth, "depth") for r, (depth, _) in zip(results, truth)]
    assert np.mean([e["abs_rel"] for e in errors]) < 0.10  # measured 0.05


def test_bundled_normal_model_predicts_the_sample_scene(views):
    images, truth = views
    model = LotusModel.load(NORMAL, device="cpu", dtype="float32", processing_res=RES)
    assert model.info.task == "normal"
    results = model.predict(images)
    angles = np.concatenate([normal_angles(r.normal, n) for r, (_, n) in zip(results, truth)])
    assert normal_summary(angles)["mean_deg"] < 20.0  # measured 11-12 deg


def demo_command(out: Path) -> list[str]:
    """The README demo: the sample scene with the bundled models (offline)."""
    return [
        "scene",
        str(SCENE / "images"),
        "-o",
        str(out),
        "--lotus-depth",
        str(DEPTH),
        "--lotus-normal",
        str(NORMAL),
        "--set",
        f"predictor.processing_res={RES}",
    ]


@pytest.mark.slow
def test_readme_demo_reconstructs_the_sample_scene(tmp_path, monkeypatch):
    import trimesh

    from pipelines.cli import main
    from sample_scenes.scoring import SceneScorer, to_ground_truth_frame

    monkeypatch.setenv("GLOG_minloglevel", "1")
    out = tmp_path / "room_small"
    assert main(demo_command(out)) == 0
    scene = load_scene(SCENE)
    mesh = trimesh.load(out / "mesh.ply", process=False)
    mesh_gt, _ = to_ground_truth_frame(mesh, out / "cameras.json", scene)
    metrics = SceneScorer(scene).metrics(mesh_gt)
    assert metrics["F@2%_seen"] > 0.6, metrics
    assert metrics["accuracy"] < 0.02 * scene.extent, metrics
    assert os.path.isfile(out / "report.json")
