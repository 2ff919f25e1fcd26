"""What report.html costs: its share of the scene's time, and its size, at 30 and 100 views.

    python bench/report_budget.py [--views 30 100] [--width 384 --height 288] [--work DIR]

For each size: a generated room and simulated Lotus-like predictions (bench/scaling.py's, cached
in --work), then `lotus-recon -q scene ... --predictions` in its own process (real SfM and
fusion, default settings; the scene command writes report.html at its end and logs how long
that took; a cached run keeps its first log). Then the report is rebuilt alone in a fresh
process that has the run's libraries loaded (matplotlib's import counted). Printed: scene
seconds (the stages in report.json), report seconds (in the run, and alone: wall and CPU),
the ratios, and the page's size with its parts. On a shared machine wall times swing with the
load; the CPU time of the rebuild is the steadier number. Budget (issue 12): < 10 % of
the scene's time at 30 views, < 20 MB at 100 views. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scaling import prepare, run_scene  # noqa: E402


def in_run_seconds(out: Path) -> float:
    """The report time the scene command logged (OUT/log.txt: 'report: PATH (X s)')."""
    found = re.findall(r"report: .*report\.html \(([\d.]+) s\)", (out / "log.txt").read_text())
    return float(found[-1]) if found else float("nan")


STANDALONE = """
import json, time
import open3d, pycolmap, trimesh  # a scene run has these loaded when it writes the report
from pipelines.report import build_report
cpu, wall = time.process_time(), time.perf_counter()
build_report({out!r}, "scene")
print(json.dumps({{"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}}))
"""


def standalone_seconds(out: Path) -> dict[str, float]:
    """CPU and wall seconds of build_report in a fresh process (the run's libraries loaded)."""
    code = STANDALONE.format(out=str(out))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def page_parts(html: str) -> dict[str, float]:
    """MB of the page's parts: gallery thumbnails, plots, 3D data, the rest (script, text)."""
    jpeg = sum(len(m) for m in re.findall(r"data:image/jpeg;base64,[^\"]+", html))
    png = sum(len(m) for m in re.findall(r"data:image/png;base64,[^\"]+", html))
    scene = re.search(r'<script id="scene-data"[^>]*>(.*?)</script>', html, re.S)
    data = len(scene.group(1)) if scene else 0
    mb = 1024 * 1024
    rest = len(html) - jpeg - png - data
    return {"gallery": jpeg / mb, "plots": png / mb, "3d": data / mb, "rest": rest / mb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lotus_scaling"))
    args = parser.parse_args(argv)
    for views in args.views:
        scene, preds = prepare(args.work, views, args.width, args.height)
        out = args.work / f"report_{views}_{args.width}x{args.height}"
        if not (out / "report.html").is_file():
            subprocess.run(["rm", "-rf", str(out)], check=True)
            run_scene(scene, preds, out, [])
        report = json.loads((out / "report.json").read_text())
        scene_s = sum(report["seconds"].values())
        in_run, alone = in_run_seconds(out), standalone_seconds(out)
        html = (out / "report.html").read_text()
        parts = page_parts(html)
        print(
            f"{views} views: scene {scene_s:.1f} s wall; report in that run {in_run:.1f} s wall "
            f"({100 * in_run / scene_s:.1f} %); rebuilt alone {alone['wall']:.1f} s wall, "
            f"{alone['cpu']:.1f} s CPU ({100 * alone['cpu'] / scene_s:.1f} % of the scene's wall); "
            f"report.html {len(html) / 2**20:.2f} MB ("
            + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            + f"); mesh {report['mesh']['faces']} faces"
        )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (timings are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
