"""Deterministic procedural sample scenes with ground truth, and simulated Lotus predictions.

    generate_scene(out_dir, kind="room", seed=0, num_views=30, width=640, height=480) -> Path
    load_scene(root) -> SceneGroundTruth
    render_ground_truth(scene, name) -> (depth (H, W), normal (H, W, 3))
    scene_frames(scene) -> list[Frame]
    simulate_prediction(depth, normal, space, rng, params=LOTUS_LIKE) -> MonoPrediction
    write_predictions(scene_dir, out_dir, space="disparity", seed=0, params=LOTUS_LIKE) -> Path

Names are imported on first use, so `python -m sample_scenes --help` does not load Open3D.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "generate_scene": "sample_scenes.generator",
    "SCENE_KINDS": "sample_scenes.generator",
    "GENERATOR_VERSION": "sample_scenes.generator",
    "SceneGroundTruth": "sample_scenes.scene",
    "load_scene": "sample_scenes.scene",
    "load_mesh": "sample_scenes.scene",
    "render_ground_truth": "sample_scenes.scene",
    "scene_frames": "sample_scenes.scene",
    "SimulationParams": "sample_scenes.simulate",
    "ORACLE": "sample_scenes.simulate",
    "LOTUS_LIKE": "sample_scenes.simulate",
    "simulate_prediction": "sample_scenes.simulate",
    "affine_fit_errors": "sample_scenes.simulate",
    "write_predictions": "sample_scenes.simulate",
}

__all__ = [
    "GENERATOR_VERSION",
    "LOTUS_LIKE",
    "ORACLE",
    "SCENE_KINDS",
    "SceneGroundTruth",
    "SimulationParams",
    "affine_fit_errors",
    "generate_scene",
    "load_mesh",
    "load_scene",
    "render_ground_truth",
    "scene_frames",
    "simulate_prediction",
    "write_predictions",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from sample_scenes.generator import GENERATOR_VERSION, SCENE_KINDS, generate_scene
    from sample_scenes.scene import (
        SceneGroundTruth,
        load_mesh,
        load_scene,
        render_ground_truth,
        scene_frames,
    )
    from sample_scenes.simulate import (
        LOTUS_LIKE,
        ORACLE,
        SimulationParams,
        affine_fit_errors,
        simulate_prediction,
        write_predictions,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sample_scenes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
