"""How much can any per-pixel fusion weight gain? Oracle weights from the true depth error.

    python bench/weighting_bound.py [--scenes room:0,room:1,object:0] [--views 30]

Runs the default scene pipeline up to alignment (real SfM, simulated Lotus disparity, smooth +
normal-integration shape correction; stages shared with bench/reconstruction.py's work folder
are reused) and its multi-view consistency check, then fuses the same views several times,
changing only the per-pixel weights:

- uniform: 1 per valid pixel (classic TSDF);
- guided: the default normal-guided weights (`recon.fusion.view_weights`);
- oracle sigma=s: exp(-e^2 / 2 s^2) with e the pixel's true relative depth error, from the
  ground-truth mesh ray-cast through the SfM camera (put into the true frame by the similarity
  from SfM camera centres). No method can know e; this bounds what a weight can do.
- oracle drop e>1%: pixels with a true error above 1 % left out (a mask, not a weight).

Each mesh is cleaned like the pipeline's and scored like bench/reconstruction.py (F@1% of the
extent against the seen ground-truth surface). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GLOG_minloglevel", "1")

from reconstruction import add_scene_arguments, prepare_scene, variant_config  # noqa: E402

from pipelines.scene import align_scene  # noqa: E402
from pipelines.view_files import load_view_arrays  # noqa: E402
from pipelines.workspace import Workspace  # noqa: E402
from recon.consistency import ViewSource, fusion_views  # noqa: E402
from recon.evaluate import apply_similarity, similarity_from_poses  # noqa: E402
from recon.fusion import (  # noqa: E402
    extract_mesh,
    fuse_views,
    scene_fusion_params,
    view_weights,
)
from recon.mesh import clean_mesh  # noqa: E402
from recon.records import View  # noqa: E402
from sample_scenes import load_scene  # noqa: E402
from sample_scenes.render import depth_and_normal, make_raycaster  # noqa: E402
from sample_scenes.scene import load_mesh  # noqa: E402
from sample_scenes.scoring import SceneScorer  # noqa: E402

# weight(depth, normal, K, confidence, true relative error) -> (H, W) weights
Weighting = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def weightings(guided_params) -> dict[str, Weighting]:
    def oracle(sigma: float) -> Weighting:
        # A tiny floor keeps every observation: only the average changes, not what is seen.
        return lambda d, n, K, c, e: (d > 0) * (np.exp(-0.5 * (e / sigma) ** 2) + 1e-4)

    return {
        "uniform": lambda d, n, K, c, e: d > 0,
        "guided": lambda d, n, K, c, e: view_weights(d, n, K, c, guided_params),
        **{f"oracle sigma={s:g}": oracle(s) for s in (0.003, 0.01, 0.03)},
        "oracle drop e>1%": lambda d, n, K, c, e: (d > 0) & (e <= 0.01),
    }


def true_depth_in_sfm_camera(rc, K, cam_from_world, similarity, width, height) -> np.ndarray:
    """(H, W) ground-truth z-depth in SfM units seen through an SfM camera (0 = no hit).

    similarity (s, R, t) maps SfM world points to the true frame: X_true = s R X + t; the
    camera's pose in the true frame is then [R_c R^T | s t_c - R_c R^T t] (metres)."""
    s, R, t = similarity
    pose = np.eye(4)
    pose[:3, :3] = cam_from_world[:3, :3] @ R.T
    pose[:3, 3] = s * cam_from_world[:3, 3] - pose[:3, :3] @ t
    return depth_and_normal(rc, K, pose, width, height)[0] / s


def bound_scene(spec: str, args) -> list[tuple[str, dict]]:
    sdir, preds = prepare_scene(spec, args, *map(int, args.size.split("x")))
    gt = load_scene(sdir)
    config = variant_config(preds, [])  # the default configuration
    with Workspace(args.work / sdir.name / "run") as ws:
        aligned, _ = align_scene(ws, gt.image_dir, config)
    scene, align_dir = aligned.scene, aligned.views.stage_dir
    names = aligned.views.names
    similarity = similarity_from_poses(scene.cam_from_world, gt.cam_from_world)
    rc = make_raycaster(*load_mesh(gt.mesh_path)[:2])
    views = []
    for name in names:
        arrays = load_view_arrays(align_dir, name)
        depth, cam = arrays["depth"], scene.cameras[name]
        true = true_depth_in_sfm_camera(
            rc, cam.K, scene.cam_from_world[name], similarity, cam.width, cam.height
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where((depth > 0) & (true > 0), np.abs(depth - true) / true, 1.0)
        views.append((scene.frame(name), arrays, error))
    if config.fusion.consistency.enabled:  # the scene pipeline's check: rejected pixels leave
        posed = [View(frame, a["depth"], None, None) for frame, a, _ in views]
        checked = fusion_views(ViewSource.of_views(posed), config.fusion)
        for (_, a, _), view in zip(views, checked):
            a["depth"] = view.depth
    params = scene_fusion_params(
        [scene.cameras[n] for n in names],
        scene.points_xyz,
        depths=(v[1]["depth"] for v in views),
        base=dataclasses.replace(config.fusion, integrate_color=False),
    )
    scorer = SceneScorer(gt)
    rows = []
    for label, weight in weightings(params.weights).items():
        fused = [
            View(frame, a["depth"], a.get("normal"),
                 weight(a["depth"], a.get("normal"), frame.camera.K, a.get("confidence"), e)
                 .astype(np.float32))
            for frame, a, e in views
        ]  # fmt: skip
        mesh = clean_mesh(extract_mesh(fuse_views(fused, params)), config.mesh, scene.points_xyz)
        mesh.vertices = apply_similarity(mesh.vertices, similarity)
        rows.append((label, scorer.metrics(mesh)))
        m = rows[-1][1]
        print(f"  {sdir.name} {label}: F@1% {m['F@1%_seen']:.4f}", flush=True)
    errors = np.concatenate([e[a["depth"] > 0] for _, a, e in views])
    p50, p90 = np.percentile(errors, [50, 90])
    print(f"  {sdir.name}: true relative depth error of aligned pixels: median {p50:.4f}, "
          f"90th percentile {p90:.4f}")  # fmt: skip
    return [(sdir.name, dict(rows))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scene_arguments(ap)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = [r for spec in args.scenes.split(",") for r in bound_scene(spec, args)]
    print(f"\n{'scene':<22}{'weights':<20}{'F@1%':>7}{'P@1%':>7}{'R@1%':>7}{'vs uniform':>12}")
    for name, rows in results:
        base = rows["uniform"]["F@1%_seen"]
        for label, m in rows.items():
            f = m["F@1%_seen"]
            print(f"{name:<22}{label:<20}{f:7.3f}{m['P@1%']:7.3f}{m['R@1%_seen']:7.3f}"
                  f"{100 * (f - base):+11.1f}p")  # fmt: skip


if __name__ == "__main__":
    main()
