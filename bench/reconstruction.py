"""Reconstruction benchmark on generated scenes with simulated Lotus predictions.

    python bench/reconstruction.py [--scenes room:0,room:1,object:0] [--views 30]

For each scene: generate it (cached), simulate Lotus-like predictions (affine-invariant
disparity with per-view scale/shift, a smooth warp, noise, blurred edges; noisy normals), run the
scene pipeline (real SfM) once per variant sharing the SfM and prediction stages, put each mesh
into the ground-truth frame with the similarity from SfM camera centres to the true ones, and
print F-score at 0.5/1/2% of the scene extent, accuracy, completeness, Chamfer, time and memory.
The upper bound fuses ground-truth depth at ground-truth poses with the same voxel size.
Printed, never asserted: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.config import from_dict  # noqa: E402
from pipelines.scene import run_scene  # noqa: E402
from pipelines.scene_config import SceneConfig  # noqa: E402
from recon.evaluate import mesh_metrics, similarity_from_centers  # noqa: E402
from recon.fusion import FusionParams, extract_mesh, fuse_views  # noqa: E402
from recon.records import View  # noqa: E402
from sample_scenes import generate_scene, load_scene, render_ground_truth, scene_frames  # noqa: E402
from sample_scenes.simulate import write_predictions  # noqa: E402

VARIANTS: dict[str, dict] = {
    # plain per-view affine fit, weight 1 per observation (the baseline)
    "affine+uniform": {"align": {"refine": None}, "fusion": {"weighting": "uniform"}},
    "affine+guided": {"align": {"refine": None}, "fusion": {"weighting": "guided"}},
    "smooth+uniform": {"align": {"refine": {}}, "fusion": {"weighting": "uniform"}},
    "smooth+guided": {"align": {"refine": {}}, "fusion": {"weighting": "guided"}},
}


def base_config(views: int) -> dict:
    """Bench settings shared by all variants (file predictor set per scene)."""
    return {"predictor": {"kind": "file"}, "sfm": {"seed": 0}}


def scene_dir(work: Path, kind: str, seed: int, views: int, width: int, height: int) -> Path:
    path = work / f"{kind}-s{seed}-v{views}-{width}x{height}"
    if not (path / "scene.json").is_file():
        generate_scene(path, kind=kind, seed=seed, num_views=views, width=width, height=height)
    return path


def mesh_to_gt(mesh: trimesh.Trimesh, cameras_json: Path, gt) -> tuple[trimesh.Trimesh, float]:
    """Map an SfM-frame mesh into the GT frame (similarity of camera centres)."""
    data = json.loads(cameras_json.read_text())["images"]
    names = [n for n in data if n in gt.cam_from_world]
    src = np.array([np.linalg.inv(np.array(data[n]["cam_from_world"]))[:3, 3] for n in names])
    dst = np.array([np.linalg.inv(gt.cam_from_world[n])[:3, 3] for n in names])
    scale, R, t = similarity_from_centers(src, dst)
    out = mesh.copy()
    out.vertices = scale * (np.asarray(mesh.vertices) @ R.T) + t
    return out, scale


def upper_bound(gt, voxel_size: float, trunc_voxels: float) -> trimesh.Trimesh:
    """Ground-truth depth at ground-truth poses, uniform weights, same voxel size."""
    frames = scene_frames(gt)
    depths = {f.name: render_ground_truth(gt, f.name)[0] for f in frames}
    valid = np.concatenate([d[d > 0].ravel()[::11] for d in depths.values()])
    params = FusionParams(
        voxel_size=voxel_size,
        trunc_voxels=trunc_voxels,
        weighting="uniform",
        depth_min=float(valid.min()) * 0.9,
        depth_max=float(valid.max()) * 1.1,
    )
    views = (
        View(
            frame=f,
            depth=depths[f.name],
            normal=None,
            weight=(depths[f.name] > 0).astype(np.float32),
        )
        for f in frames
    )
    return extract_mesh(fuse_views(views, params), params.weight_threshold)


def run_variant(gt, work: Path, preds: Path, name: str, overrides: dict) -> dict:
    config = from_dict(SceneConfig, _merge(base_config(len(gt.names)), overrides))
    config = dataclasses.replace(
        config, predictor=dataclasses.replace(config.predictor, predictions=str(preds))
    )
    start = time.perf_counter()
    result = run_scene(gt.image_dir, work / "run", config)
    wall = time.perf_counter() - start
    mesh = trimesh.load(result.mesh_paths["ply"], process=False)
    mesh_gt, scale = mesh_to_gt(mesh, work / "run" / "cameras.json", gt)
    gt_mesh = trimesh.load(gt.mesh_path, process=False)
    metrics = mesh_metrics(mesh_gt, gt_mesh, num_samples=100_000, extent=gt.extent)
    seconds = result.report["seconds"]
    return {
        "variant": name,
        "metrics": metrics.summary(),
        "wall_s": wall,
        "seconds": seconds,
        "sim_scale": scale,
        "voxel_size_gt": result.report["fusion"]["voxel_size"] * scale,
        "trunc_voxels": config.fusion.trunc_voxels,
        "registered": result.report["sfm"]["num_registered"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'scene':<22}{'variant':<17}{'F@0.5%':>7}{'F@1%':>7}{'F@2%':>7}{'/UB@1%':>7}"
        f"{'acc':>8}{'comp':>8}{'chamf':>8}{'reg':>5}{'s(no pred)':>11}{'RSS MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["metrics"]
        f = [m["fscore@0.5%"], m["fscore@1%"], m["fscore@2%"]]
        ub = r.get("ub_f1")
        ratio = f"{f[1] / ub:7.3f}" if ub else f"{'':>7}"
        secs = r.get("seconds", {})
        no_pred = sum(v for k, v in secs.items() if k != "predict") if secs else float("nan")
        print(
            f"{r['scene']:<22}{r['variant']:<17}{f[0]:7.3f}{f[1]:7.3f}{f[2]:7.3f}{ratio}"
            f"{m['accuracy']:8.4f}{m['completeness']:8.4f}{m['chamfer']:8.4f}"
            f"{r.get('registered', ''):>5}{no_pred:11.1f}{r.get('peak_rss_mb', 0):8.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scenes",
        default="room:0,room:1,object:0",
        help="kind:seed to generate, or a scene folder, comma-separated",
    )
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--space", default="disparity", choices=["depth", "disparity"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lotus_recon_bench"))
    ap.add_argument("--json", type=Path, help="also write all rows here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    width, height = map(int, args.size.split("x"))
    rows = []
    for spec in args.scenes.split(","):
        if ":" in spec:
            kind, seed = spec.split(":")
            sdir = scene_dir(args.work, kind, int(seed), args.views, width, height)
        else:  # an existing scene folder, e.g. sample_scenes/room_small
            sdir, seed = Path(spec), 0
        gt = load_scene(sdir)
        preds = args.work / f"{sdir.name}-pred-{args.space}"
        if not preds.is_dir():
            write_predictions(sdir, preds, space=args.space, seed=int(seed))
        scene_rows = []
        for name in args.variants.split(","):
            row = run_variant(gt, args.work / sdir.name, preds, name, VARIANTS[name])
            row["scene"] = sdir.name
            scene_rows.append(row)
            print(f"  {sdir.name} {name}: F@1% {row['metrics']['fscore@1%']:.3f}", flush=True)
        ref = scene_rows[0]
        ub_mesh = upper_bound(gt, ref["voxel_size_gt"], ref["trunc_voxels"])
        ub = mesh_metrics(
            ub_mesh,
            trimesh.load(gt.mesh_path, process=False),
            num_samples=100_000,
            extent=gt.extent,
        ).summary()
        for row in scene_rows:
            row["ub_f1"] = ub["fscore@1%"]
        rows += [{"scene": sdir.name, "variant": "upper bound", "metrics": ub}] + scene_rows
    print()
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
