"""How time and memory of the scene command grow with the number of views.

    python bench/scaling.py [--views 10 30 100] [--width 384 --height 288] [--work DIR]
                            [--priors nerfstudio ...]

For each size: generate a room scene (cached in --work), simulate Lotus-like predictions, then
run `lotus-recon -q scene IMAGES -o OUT --predictions PRED` in its own process (real SfM, real
fusion, default settings), so its peak RSS is its own. Printed per size: seconds per stage,
the process's peak RSS after each stage (the peak only grows, so the stage where it jumps is
the one that needs the memory), and the whole run's wall time and peak RSS as the parent saw
them (wait4). Printed, never asserted: numbers depend on the machine and its load.

    python bench/scaling.py --executors [--executor-views 18 60] [--ray-workers 2]

Local against Ray for the predict stage with the bundled tiny Lotus models (processing_res
128): `priors` runs locally on a scene, then again with `--executor ray` on a copy of its
workspace with the prediction stage removed (SfM is not redone), so the difference in the
predict stage's seconds is the Ray executor's (start of a local Ray, workers importing torch
and loading the model, transfers). 18 views = the committed sample scene. The Ray workers'
memory is their own (not in the driver's peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("images", "sfm", "predict", "align", "fuse", "export", "priors")


def prepare(work: Path, views: int, width: int, height: int) -> tuple[Path, Path]:
    """Scene folder and simulated predictions for `views` views (reused when present)."""
    from sample_scenes.generator import generate_scene
    from sample_scenes.simulate import LOTUS_LIKE, write_predictions

    scene = work / f"room_{views}_{width}x{height}"
    if not (scene / "scene.json").is_file():
        generate_scene(scene, "room", 0, views, width, height)
    preds = work / f"pred_{views}_{width}x{height}"
    if not preds.is_dir():
        write_predictions(scene, preds, "disparity", 0, LOTUS_LIKE)
    return scene, preds


def run_scene(scene: Path, preds: Path, out: Path, extra: list[str]) -> dict:
    """One scene command in a child process; returns its report plus wall time and peak RSS."""
    cmd = [sys.executable, "-m", "pipelines.cli", "-q", "scene", str(scene / "images")]
    cmd += ["-o", str(out), "--predictions", str(preds), *extra]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scene command failed for {scene}: {' '.join(cmd)}")
    report = json.loads((out / "report.json").read_text())
    return {**report, "wall_s": wall, "child_peak_mb": usage.ru_maxrss / 1024.0}


TINY = [
    "--lotus-depth",
    str(REPO / "models" / "lotus-depth-tiny"),
    "--lotus-normal",
    str(REPO / "models" / "lotus-normal-tiny"),
    "--set",
    "predictor.processing_res=128",
]


def _priors(photos: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pipelines.cli", "-q", "priors", str(photos), "-o", str(out)]
    cmd += ["--format", "nerfstudio", *TINY, *extra]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"priors failed: {' '.join(cmd)}")
    report = json.loads((out / "report.json").read_text())
    return {**report, "wall_s": time.perf_counter() - start, "peak_mb": usage.ru_maxrss / 1024}


def compare_executors(photos: Path, work: Path, workers: int) -> dict:
    """Predict-stage seconds, local then Ray (same workspace otherwise), and the largest
    difference between their prediction files."""
    import shutil

    import numpy as np

    local, remote = work / "local", work / "ray"
    for path in (local, remote):
        shutil.rmtree(path, ignore_errors=True)
    a = _priors(photos, local, [])
    shutil.copytree(local, remote)
    for tag in ("predict", "align"):
        for folder in (remote / "work").glob(f"{tag}-*"):
            shutil.rmtree(folder)
    ray = ["--executor", "ray", "--set", f"executor.workers={workers}"]
    b = _priors(photos, remote, [*ray, "--set", "executor.cpus_per_worker=1"])
    diff = 0.0
    (pred_a,) = (local / "work").glob("predict-*")
    (pred_b,) = (remote / "work").glob("predict-*")
    for file in pred_a.glob("*.npz"):
        with np.load(file) as x, np.load(pred_b / file.name) as y:
            diff = max(diff, float(np.abs(x["values"] - y["values"]).max()))
    return {"local_s": a["seconds"]["predict"], "ray_s": b["seconds"]["predict"], "diff": diff}


def print_table(rows: dict[int, dict]) -> None:
    header = ["views", "registered"] + [f"{s} s" for s in STAGES] + ["total s", "peak MB"]
    print("\nseconds per stage (wall time of the scene command in its own process)")
    print(" | ".join(header))
    for views, r in rows.items():
        secs = [f"{r['seconds'].get(s, 0.0):.1f}" for s in STAGES]
        registered = f"{r['sfm']['num_registered']}/{r['sfm']['num_images']}"
        print(
            " | ".join(
                [str(views), registered, *secs, f"{r['wall_s']:.1f}", f"{r['child_peak_mb']:.0f}"]
            )
        )
    print("\npeak RSS (MB) of the process after each stage")
    print(" | ".join(["views"] + list(STAGES)))
    for views, r in rows.items():
        peaks = r.get("peak_rss_mb_after", {})
        print(" | ".join([str(views)] + [f"{peaks.get(s, float('nan')):.0f}" for s in STAGES]))
    print("\nSfM detail (s): features / matching / mapping, matcher")
    for views, r in rows.items():
        sec = r["sfm"].get("seconds", {})
        mapping = sum(v for k, v in sec.items() if k.startswith("mapping"))
        print(
            f"{views}: {sec.get('features', 0):.1f} / {sec.get('matching', 0):.1f} / "
            f"{mapping:.1f}, {r['sfm'].get('matcher')}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lotus_scaling"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--priors", action="append", default=[], help="also export this layout")
    parser.add_argument("--executors", action="store_true", help="local vs Ray, predict stage")
    parser.add_argument("--executor-views", type=int, nargs="+", default=[18])
    parser.add_argument("--ray-workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.executors:
        return run_executor_bench(args)
    extra = [x for item in args.overrides for x in ("--set", item)]
    extra += [x for fmt in args.priors for x in ("--priors", fmt)]
    rows: dict[int, dict] = {}
    for views in args.views:
        scene, preds = prepare(args.work, views, args.width, args.height)
        out = args.work / f"out_{views}_{args.width}x{args.height}"
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)  # measure a fresh run
        rows[views] = run_scene(scene, preds, out, extra)
        print(
            f"{views} views: {rows[views]['wall_s']:.1f} s, {rows[views]['child_peak_mb']:.0f} MB"
        )
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print_table(rows)
    return 0


def run_executor_bench(args: argparse.Namespace) -> int:
    from tests.cli_helpers import ROOM

    results = {}
    for views in args.executor_views:
        if views == 18:
            photos = ROOM / "images"
        else:
            photos = prepare(args.work, views, args.width, args.height)[0] / "images"
        results[views] = compare_executors(photos, args.work / f"exec_{views}", args.ray_workers)
        print(f"{views} views: {results[views]}", flush=True)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"views | predict local s | predict ray ({args.ray_workers} workers) s | ray - local s")
    for views, r in results.items():
        extra = r["ray_s"] - r["local_s"]
        print(f"{views} | {r['local_s']:.1f} | {r['ray_s']:.1f} | {extra:+.1f}")
    print(
        "largest |local - ray| of any prediction value:", max(r["diff"] for r in results.values())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
