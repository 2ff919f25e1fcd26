"""What report.html costs: its share of the scene's time, and its size, at 30 and 100 views.

    python bench/report_budget.py [--views 30 100] [--width 384 --height 288] [--work DIR]

For each size: a generated room and simulated Lotus-like predictions (bench/scaling.py's, cached
in --work), then `lotus-recon -q scene ... --predictions` in its own process (real SfM and
fusion, default settings; the scene command writes report.html at its end and logs how long
that took). Then the report is rebuilt alone in a fresh process (`python -c build_report`,
imports included). Printed: scene seconds (the stages in report.json), report seconds (in-run
and standalone), the ratio, and the page's size with its parts. Budget (issue 12): < 10 % of
the scene's time at 30 views, < 20 MB at 100 views. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scaling import prepare, run_scene  # noqa: E402


def in_run_seconds(out: Path) -> float:
    """The report time the scene command logged (OUT/log.txt: 'report: PATH (X s)')."""
    found = re.findall(r"report: .*report\.html \(([\d.]+) s\)", (out / "log.txt").read_text())
    return float(found[-1]) if found else float("nan")


def standalone_seconds(out: Path) -> float:
    code = f"from pipelines.report import build_report; build_report({str(out)!r}, 'scene')"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    return time.perf_counter() - start


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
        report = __import__("json").loads((out / "report.json").read_text())
        scene_s = sum(report["seconds"].values())
        in_run, alone = in_run_seconds(out), standalone_seconds(out)
        html = (out / "report.html").read_text()
        parts = page_parts(html)
        print(
            f"{views} views: scene {scene_s:.1f} s; report {in_run:.1f} s in the run "
            f"({100 * in_run / scene_s:.1f} %), {alone:.1f} s alone with imports "
            f"({100 * alone / scene_s:.1f} %); report.html {len(html) / 2**20:.2f} MB ("
            + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            + f"); mesh {report['mesh']['faces']} faces"
        )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (timings are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
