"""Training data for `lotus_core.training`: generated sample scenes rendered into its folder
layout (ROOT/images/<stem>.jpg, ROOT/depth/<stem>.npy (H, W) float32 z-depth,
ROOT/normal/<stem>.npy (H, W, 3) float32 unit normals, OpenCV camera frame).

    python -m sample_scenes training-data -o DIR --seeds 0-199 [--kind room --views 12 --size 128x96]

`lotus_core.training` only reads such folders; rendering them lives here, beside the scenes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from sample_scenes.generator import generate_scene
from sample_scenes.scene import load_scene, render_ground_truth


def parse_seeds(text: str) -> list[int]:
    """'0-9,20,30-31' -> [0..9, 20, 30, 31]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def write_scene_dataset(
    out: str | Path,
    seeds: list[int],
    *,
    kind: str = "room",
    views: int = 12,
    width: int = 128,
    height: int = 96,
) -> Path:
    """Render generated sample scenes (one per seed) into the folder layout above.

    Stems are `<kind><seed>_<view>`; a scene already written is skipped, so an interrupted
    dump resumes. Returns `out`.
    """
    out = Path(out)
    for sub in ("images", "depth", "normal"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        prefix = f"{kind}{seed:05d}"
        if (out / "normal" / f"{prefix}_{views - 1:03d}.npy").is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            scene = load_scene(generate_scene(Path(tmp) / "s", kind, seed, views, width, height))
            for index, name in enumerate(scene.names):
                stem = f"{prefix}_{index:03d}"
                depth, normal = render_ground_truth(scene, name)
                shutil.copyfile(scene.image_dir / name, out / "images" / f"{stem}.jpg")
                np.save(out / "depth" / f"{stem}.npy", depth)
                np.save(out / "normal" / f"{stem}.npy", normal)
    return out
