"""Reconstruction benchmark through the front door: the `scene` command on generated scenes.

    python bench/reconstruction.py [--scenes room:0,room:1,object:0] [--views 30]
                                   [--errors moderate,hard,mix] [--variants default,...]
                                   [--json rows.json]

For each scene: generate it (cached), simulate Lotus-like predictions of each error kind
(`python -m sample_scenes simulate --error KIND`), run `lotus-recon scene PHOTOS -o OUT
--predictions PRED` with the shipped preset plus each variant's `--set` overrides (printed
beside its row), read what a user reads (`OUT/report.json`, `OUT/mesh.ply`), put the mesh into
the ground-truth frame with the similarity from the run's camera centres (`OUT/cameras.json`)
to the true ones, and print F-score at 0.5/1/2% of the scene extent, accuracy, completeness,
Chamfer, the views dropped, time and memory. Runs of one scene share OUT, so SfM runs once.

Two references for completeness: the whole ground-truth mesh ("all": surfaces no camera sees
count as missed, so no method gets near 1), and the ground-truth surface seen by at least one
camera ("seen", the headline numbers). Accuracy/precision always use the whole GT mesh.
The upper bound fuses ground-truth depth at ground-truth poses with the same voxel size.
Printed, never asserted: timings depend on the machine (and its load, printed too).
"""

from __future__ import annotations

import argparse
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

from pipelines.cli import main as cli_main  # noqa: E402
from pipelines.config import resolve  # noqa: E402
from pipelines.scene_config import SceneConfig  # noqa: E402
from recon.fusion import FusionParams, extract_mesh, fuse_views  # noqa: E402
from recon.records import View  # noqa: E402
from sample_scenes import generate_scene, load_scene, render_ground_truth, scene_frames  # noqa: E402
from sample_scenes.scoring import SceneScorer, to_ground_truth_frame  # noqa: E402
from sample_scenes.simulate import ERROR_KINDS, write_predictions  # noqa: E402

PLAIN = ["fusion.weighting=uniform", "fusion.consistency.enabled=false"]  # classic TSDF
# Each variant is the `--set` overrides given to the shipped `scene` command.
VARIANTS: dict[str, list[str]] = {
    "default": [],  # what `lotus-recon scene` runs
    # plain per-view affine fit, weight 1 per observation (the baseline)
    "affine+uniform": ["align.refine=null", *PLAIN],
    # the same fit with normal-guided weights (no consistency check)
    "affine+guided": ["align.refine=null", "fusion.consistency.enabled=false"],
    "no-consistency": ["fusion.consistency.enabled=false"],
    "uniform": ["fusion.weighting=uniform"],  # the default, weights swapped only
    # ablations of the default
    "smooth-only": ["align.refine.normals=false"],
    "normals-only": ["align.refine.smooth=false"],
    "no-normals": ["align.refine.normals=false", "fusion.weighting=uniform"],
}
DEFAULT_VARIANTS = "default,affine+uniform"
BASE_SETS = ["sfm.seed=0"]  # shared by every bench run
DEFAULT_ERRORS = "moderate,hard,objects,far,edges,drift,mix"


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


def variant_config(preds: Path, sets: list[str]) -> SceneConfig:
    """The config `scene --predictions preds` resolves with the shipped preset and `sets`."""
    return resolve(
        SceneConfig,
        "default",
        overrides=[*BASE_SETS, "predictor.kind=file", f"predictor.predictions={preds}", *sets],
    )


def scene_spec(spec: str, args, width: int, height: int) -> tuple[Path, int]:
    """The scene folder of `spec` (kind:seed, generated and cached, or an existing scene
    folder such as sample_scenes/room_small) and its seed."""
    if ":" in spec:
        kind, seed = spec.split(":")
        return scene_dir(args.work, kind, int(seed), args.views, width, height), int(seed)
    return Path(spec), 0


def predictions_for(sdir: Path, seed: int, error: str, args) -> Path:
    """Simulated predictions of error kind `error` in args.space (written once)."""
    preds = args.work / f"{sdir.name}-pred-{args.space}-{error}"
    if not preds.is_dir():
        write_predictions(sdir, preds, space=args.space, seed=seed, params=ERROR_KINDS[error])
    return preds


def prepare_scene(spec: str, args, width: int, height: int) -> tuple[Path, Path]:
    """Scene folder and its simulated predictions of the moderate error kind."""
    sdir, seed = scene_spec(spec, args, width, height)
    return sdir, predictions_for(sdir, seed, "moderate", args)


def run_cli(gt, out: Path, preds: Path, sets: list[str]) -> tuple[dict, float]:
    """`lotus-recon -q scene PHOTOS -o out --predictions preds --set ...`: (report, wall s)."""
    argv = ["-q", "scene", str(gt.image_dir), "-o", str(out), "--predictions", str(preds)]
    for item in [*BASE_SETS, *sets]:
        argv += ["--set", item]
    start = time.perf_counter()
    code = cli_main(argv)
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"lotus-recon exited {code}: {' '.join(argv)}")
    return json.loads((out / "report.json").read_text()), wall


def run_variant(gt, ref: SceneScorer, out: Path, preds: Path, name: str, sets: list[str]) -> dict:
    report, wall = run_cli(gt, out, preds, sets)
    mesh = trimesh.load(out / "mesh.ply", process=False)
    mesh_gt, scale = to_ground_truth_frame(mesh, out / "cameras.json", gt)
    views = report["alignment"]
    return {
        "variant": name,
        "sets": sets,
        "metrics": ref.metrics(mesh_gt),
        "wall_s": wall,
        "seconds": report["seconds"],
        "sfm_seconds": report["sfm"].get("seconds", {}),
        "sim_scale": scale,
        "voxel_size_gt": report["fusion"]["voxel_size"] * scale,
        "trunc_voxels": report["fusion"]["trunc"] / report["fusion"]["voxel_size"],
        "registered": f"{report['sfm']['num_registered']}/{report['sfm']['num_images']}",
        "corrected": sum(bool(v.get("smooth_correction")) for v in views.values()),
        "dropped": {n: v["message"] for n, v in views.items() if v["status"] != "ok"},
        "faces": report["mesh"]["faces"],
        "rejected": report["fusion"].get("consistency_rejected"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'scene':<22}{'error':<10}{'variant':<16}{'F@0.5%':>7}{'F@1%':>7}{'F@2%':>7}"
        f"{'/UB@1%':>7}{'acc':>8}{'chamf':>8}{'corr':>5}{'drop':>5}{'faces':>8}  --set"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["metrics"]
        f = [m[f"F@{t}%_seen"] for t in ("0.5", "1", "2")]
        ub = r.get("ub")
        ratio = f"{f[1] / ub:7.3f}" if ub else f"{'':>7}"
        views = f"{r['corrected']:5d}{len(r['dropped']):5d}" if "dropped" in r else " " * 10
        print(
            f"{r['scene']:<22}{r.get('error', ''):<10}{r['variant']:<16}{f[0]:7.3f}{f[1]:7.3f}"
            f"{f[2]:7.3f}{ratio}{m['accuracy']:8.4f}{m['chamfer_seen']:8.4f}{views}"
            f"{r.get('faces', ''):>8}  {' '.join(r.get('sets', []))}"
        )


def print_dropped(rows: list[dict]) -> None:
    for r in rows:
        for name, why in sorted(r.get("dropped", {}).items()):
            print(f"  dropped {r['scene']} {r['error']} {r['variant']} {name}: {why}")


def print_timing(rows: list[dict]) -> None:
    """Per-stage seconds of the fresh end-to-end runs (--timing): SfM included."""
    print(
        f"\n{'scene':<22}{'reg':>6}{'feat':>6}{'match':>6}{'map':>6}{'align':>6}"
        f"{'fuse':>6}{'export':>7}{'total':>7}{'wall':>7}  (s; predictor excluded)"
    )
    for r in rows:
        if not r["variant"].startswith("timing"):
            continue
        s, sfm = r["seconds"], r["sfm_seconds"]
        mapping = sum(v for k, v in sfm.items() if k.startswith("mapping"))
        parts = [sfm.get("features", 0), sfm.get("matching", 0), mapping]
        parts += [s.get("align", 0), s.get("fuse", 0), s.get("export", 0)]
        total = sum(parts) + s.get("images", 0)
        wall = r["wall_s"] - s.get("predict", 0)
        cells = "".join(f"{p:6.1f}" for p in parts[:5]) + f"{parts[5]:7.1f}"
        print(f"{r['scene']:<22}{r['registered']:>6}{cells}{total:7.1f}{wall:7.1f}")


def timing_run(gt, ref: SceneScorer, work: Path, preds: Path) -> dict:
    """The default command end to end in a fresh folder (SfM included)."""
    fresh = work / f"timing-{time.strftime('%Y%m%d-%H%M%S')}"
    row = run_variant(gt, ref, fresh, preds, "timing (default)", VARIANTS["default"])
    row["load_after"] = os.getloadavg()[0]
    shutil.rmtree(fresh, ignore_errors=True)
    return row


def run_scene_bench(spec: str, args, width: int, height: int) -> list[dict]:
    sdir, seed = scene_spec(spec, args, width, height)
    gt = load_scene(sdir)
    ref = SceneScorer(gt)
    run_dir = args.work / f"{sdir.name}-run"  # one OUT per scene: SfM runs once
    rows = []
    for error in args.errors.split(","):
        preds = predictions_for(sdir, seed, error, args)
        for name in args.variants.split(","):
            row = run_variant(gt, ref, run_dir, preds, name, VARIANTS[name])
            row.update(scene=sdir.name, error=error)
            rows.append(row)
            m = row["metrics"]
            print(f"  {sdir.name} {error} {name}: F@1% {m['F@1%_seen']:.3f} "
                  f"({len(row['dropped'])} dropped)", flush=True)  # fmt: skip
    ub = ref.metrics(upper_bound(gt, rows[0]["voxel_size_gt"], rows[0]["trunc_voxels"]))
    if args.timing:
        preds = predictions_for(sdir, seed, args.errors.split(",")[0], args)
        rows.append(timing_run(gt, ref, args.work, preds))
        rows[-1].update(scene=sdir.name, error=args.errors.split(",")[0])
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
    ap.add_argument("--errors", default=DEFAULT_ERRORS, help=f"from {', '.join(ERROR_KINDS)}")
    ap.add_argument("--json", type=Path, help="also write all rows here")
    ap.add_argument(
        "--timing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the default command end to end in a fresh folder (SfM included)",
    )
    args = ap.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    unknown += [e for e in args.errors.split(",") if e not in ERROR_KINDS]
    if unknown:
        ap.error(f"unknown variants/errors {unknown}")
    logging.basicConfig(level=logging.WARNING)
    width, height = map(int, args.size.split("x"))
    load = [os.getloadavg()]
    rows = []
    for spec in args.scenes.split(","):
        rows += run_scene_bench(spec, args, width, height)
        load.append(os.getloadavg())
        if args.json:  # written after every scene: a long run keeps what it measured
            args.json.write_text(json.dumps(rows, indent=1, default=str))
    print()
    print_table(rows)
    print_dropped(rows)
    print_timing(rows)
    print(f"\nload average (1 min) over the run: {', '.join(f'{x[0]:.1f}' for x in load)}"
          f" on {os.cpu_count()} cores")  # fmt: skip


if __name__ == "__main__":
    main()
