"""Reconstruction benchmark on generated scenes with simulated Lotus predictions.

    python bench/reconstruction.py [--scenes room:0,room:1,object:0] [--views 30]
                                   [--variants affine+uniform,...] [--json rows.json]

For each scene: generate it (cached), simulate Lotus-like predictions (affine-invariant
disparity with per-view scale/shift, a smooth warp, noise, blurred edges; noisy normals), run the
scene pipeline (real SfM) once per variant sharing the SfM and prediction stages, put each mesh
into the ground-truth frame with the similarity from SfM camera centres to the true ones, and
print F-score at 0.5/1/2% of the scene extent, accuracy, completeness, Chamfer, time and memory.

Two references for completeness: the whole ground-truth mesh ("all": surfaces no camera sees
count as missed, so no method gets near 1), and the ground-truth surface seen by at least one
camera ("seen", the headline numbers). Accuracy/precision always use the whole GT mesh.
The upper bound fuses ground-truth depth at ground-truth poses with the same voxel size.
Printed, never asserted: timings depend on the machine (and its load, printed too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GLOG_minloglevel", "1")  # COLMAP's per-image log lines off

from pipelines.config import from_dict  # noqa: E402
from pipelines.scene import run_scene  # noqa: E402
from pipelines.scene_config import SceneConfig  # noqa: E402
from recon.fusion import FusionParams, extract_mesh, fuse_views  # noqa: E402
from recon.records import View  # noqa: E402
from sample_scenes import generate_scene, load_scene, render_ground_truth, scene_frames  # noqa: E402
from sample_scenes.scoring import SceneScorer, to_ground_truth_frame  # noqa: E402
from sample_scenes.simulate import write_predictions  # noqa: E402

PLAIN = {"weighting": "uniform", "consistency": {"enabled": False}}  # classic TSDF
VARIANTS: dict[str, dict] = {
    # plain per-view affine fit, weight 1 per observation (the baseline)
    "affine+uniform": {"align": {"refine": None}, "fusion": PLAIN},
    # the same fit with normal-guided weights (no consistency check)
    "affine+guided": {"align": {"refine": None}, "fusion": {"consistency": {"enabled": False}}},
    "no-consistency": {"fusion": {"consistency": {"enabled": False}}},
    "full+uniform": {"fusion": {"weighting": "uniform"}},  # the default, weights swapped only
    "full": {},  # the default configuration
    # ablations of the default
    "smooth-only": {"align": {"refine": {"normals": False}}},
    "normals-only": {"align": {"refine": {"smooth": False}}},
    # no normals anywhere: sparse-point shape correction only, uniform weights
    "smooth-only+uniform": {
        "align": {"refine": {"normals": False}},
        "fusion": {"weighting": "uniform"},
    },
    # edge down-weighting (off by default: it did not win)
    "edges": {"fusion": {"weights": {"edge_jump": 0.05}}},
}
DEFAULT_VARIANTS = "affine+uniform,affine+guided,no-consistency,full+uniform,full"


def base_config() -> dict:
    """Bench settings shared by all variants (file predictor set per scene)."""
    return {"predictor": {"kind": "file"}, "sfm": {"seed": 0}}


def scene_dir(work: Path, kind: str, seed: int, views: int, width: int, height: int) -> Path:
    path = work / f"{kind}-s{seed}-v{views}-{width}x{height}"
    if not (path / "scene.json").is_file():
        generate_scene(path, kind=kind, seed=seed, num_views=views, width=width, height=height)
    return path


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
    views = (View(f, depths[f.name], None, (depths[f.name] > 0).astype(np.float32)) for f in frames)
    return extract_mesh(fuse_views(views, params), params.weight_threshold)


def variant_config(preds: Path, overrides: dict) -> SceneConfig:
    """The bench's scene config with `overrides`, reading the simulated predictions `preds`."""
    config = from_dict(SceneConfig, _merge(base_config(), overrides))
    return dataclasses.replace(
        config, predictor=dataclasses.replace(config.predictor, predictions=str(preds))
    )


def prepare_scene(spec: str, args, width: int, height: int) -> tuple[Path, Path]:
    """The scene folder of `spec` (kind:seed, generated and cached, or an existing scene
    folder) and its simulated predictions in args.space (written once)."""
    if ":" in spec:
        kind, seed = spec.split(":")
        sdir = scene_dir(args.work, kind, int(seed), args.views, width, height)
    else:  # an existing scene folder, e.g. sample_scenes/room_small
        sdir, seed = Path(spec), 0
    preds = args.work / f"{sdir.name}-pred-{args.space}"
    if not preds.is_dir():
        write_predictions(sdir, preds, space=args.space, seed=int(seed))
    return sdir, preds


def run_variant(gt, ref: SceneScorer, work: Path, preds: Path, name: str, overrides: dict) -> dict:
    config = variant_config(preds, overrides)
    start = time.perf_counter()
    result = run_scene(gt.image_dir, work / "run", config)
    wall = time.perf_counter() - start
    mesh = trimesh.load(result.mesh_paths["ply"], process=False)
    mesh_gt, scale = to_ground_truth_frame(mesh, work / "run" / "cameras.json", gt)
    report = result.report
    return {
        "variant": name,
        "metrics": ref.metrics(mesh_gt),
        "wall_s": wall,
        "seconds": report["seconds"],
        "sfm_seconds": report["sfm"].get("seconds", {}),
        "sim_scale": scale,
        "voxel_size_gt": report["fusion"]["voxel_size"] * scale,
        "trunc_voxels": config.fusion.trunc_voxels,
        "registered": f"{report['sfm']['num_registered']}/{report['sfm']['num_images']}",
        "faces": report["mesh"]["faces"],
        "rejected": report["fusion"].get("consistency_rejected"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'scene':<22}{'variant':<20}{'F@0.5%':>7}{'F@1%':>7}{'F@2%':>7}{'/UB@1%':>7}"
        f"{'F@1%all':>8}{'/UB':>6}{'acc':>8}{'comp':>8}{'chamf':>8}{'faces':>8}{'RSS MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["metrics"]
        f = [m[f"F@{t}%_seen"] for t in ("0.5", "1", "2")]
        ub, ub_all = r.get("ub"), r.get("ub_all")
        ratio = f"{f[1] / ub:7.3f}" if ub else f"{'':>7}"
        ratio_all = f"{m['F@1%_all'] / ub_all:6.3f}" if ub_all else f"{'':>6}"
        print(
            f"{r['scene']:<22}{r['variant']:<20}{f[0]:7.3f}{f[1]:7.3f}{f[2]:7.3f}{ratio}"
            f"{m['F@1%_all']:8.3f}{ratio_all}{m['accuracy']:8.4f}{m['completeness_seen']:8.4f}"
            f"{m['chamfer_seen']:8.4f}{r.get('faces', ''):>8}{r.get('peak_rss_mb', 0):8.0f}"
        )


def print_timing(rows: list[dict]) -> None:
    """Per-stage seconds: fresh end-to-end runs (--timing) and every variant's own stages
    (stages shared with an earlier variant are cached and show ~0)."""
    print(
        f"\n{'scene':<22}{'run':<20}{'reg':>6}{'feat':>6}{'match':>6}{'map':>6}{'align':>6}"
        f"{'fuse':>6}{'export':>7}{'total':>7}{'wall':>7}  (s; predictor excluded)"
    )
    for r in rows:
        if "seconds" not in r:
            continue
        s, sfm = r["seconds"], r["sfm_seconds"]
        fresh = r["variant"].startswith("timing")
        mapping = sum(v for k, v in sfm.items() if k.startswith("mapping")) if fresh else 0.0
        parts = [sfm.get("features", 0), sfm.get("matching", 0), mapping] if fresh else [0] * 3
        parts += [s.get("align", 0), s.get("fuse", 0), s.get("export", 0)]
        total = sum(parts) + s.get("images", 0)
        wall = r["wall_s"] - s.get("predict", 0)
        cells = "".join(f"{p:6.1f}" for p in parts[:5]) + f"{parts[5]:7.1f}"
        print(
            f"{r['scene']:<22}{r['variant']:<20}{r['registered']:>6}{cells}{total:7.1f}{wall:7.1f}"
        )


def timing_run(gt, ref: SceneScorer, work: Path, preds: Path) -> dict:
    """The default configuration end to end in a fresh folder (SfM included)."""
    fresh = work / f"timing-{time.strftime('%Y%m%d-%H%M%S')}"
    row = run_variant(gt, ref, fresh, preds, "timing (default)", VARIANTS["full"])
    row["load_after"] = os.getloadavg()[0]
    shutil.rmtree(fresh, ignore_errors=True)
    return row


def run_scene_bench(spec: str, args, width: int, height: int) -> list[dict]:
    sdir, preds = prepare_scene(spec, args, width, height)
    gt = load_scene(sdir)
    ref = SceneScorer(gt)
    rows = []
    for name in args.variants.split(","):
        row = run_variant(gt, ref, args.work / sdir.name, preds, name, VARIANTS[name])
        row["scene"] = sdir.name
        rows.append(row)
        m = row["metrics"]
        print(f"  {sdir.name} {name}: F@1% {m['F@1%_seen']:.3f} (all {m['F@1%_all']:.3f})",
              flush=True)  # fmt: skip
    ub = ref.metrics(upper_bound(gt, rows[0]["voxel_size_gt"], rows[0]["trunc_voxels"]))
    if args.timing:
        rows.append(timing_run(gt, ref, args.work / sdir.name, preds))
        rows[-1]["scene"] = sdir.name
    for row in rows:
        row["ub"], row["ub_all"] = ub["F@1%_seen"], ub["F@1%_all"]
    return [{"scene": sdir.name, "variant": "upper bound", "metrics": ub}] + rows


def add_scene_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that pick the scenes and their simulated predictions (`prepare_scene`)."""
    ap.add_argument(
        "--scenes",
        default="room:0,room:1,object:0",
        help="kind:seed to generate, or a scene folder, comma-separated",
    )
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--space", default="disparity", choices=["depth", "disparity"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lotus_recon_bench"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scene_arguments(ap)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"from {', '.join(VARIANTS)}")
    ap.add_argument("--json", type=Path, help="also write all rows here")
    ap.add_argument(
        "--timing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the default config end to end in a fresh folder (SfM included)",
    )
    args = ap.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    logging.basicConfig(level=logging.WARNING)
    width, height = map(int, args.size.split("x"))
    load = [os.getloadavg()]
    rows = []
    for spec in args.scenes.split(","):
        rows += run_scene_bench(spec, args, width, height)
        load.append(os.getloadavg())
    print()
    print_table(rows)
    print_timing(rows)
    print(f"\nload average (1 min) over the run: {', '.join(f'{x[0]:.1f}' for x in load)}"
          f" on {os.cpu_count()} cores")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
