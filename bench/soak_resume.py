"""Soak test: runs stopped at random moments, then resumed, end byte-identical to a run that was
never stopped.

    python bench/soak_resume.py [--runs 20] [--seed 0] [--work DIR]

One reference run of `lotus-recon -q scene` (six sample views, simulated predictions, coarse
fusion, `sfm.num_threads=1`, nerfstudio priors) is timed; each soak run is then started in its
own process, sent SIGINT, SIGTERM or SIGKILL (in turn) after a random delay in [0, reference
time], and rerun to the end with the same command. Printed per run: the signal, the delay, the
stages finished when it stopped, the exit codes, and whether every output (meshes, cameras,
sparse points, priors, and report.json without its clock readings) equals the reference's bytes.
A stage can be hit more than once across runs, not each with certainty: the delays are random.
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUTPUTS = ("mesh.ply", "mesh.glb", "mesh.obj", "cameras.json", "sparse_points.ply")
STAGES = ("images", "sfm", "predict", "align", "fuse")
CLOCKS = ("seconds", "finished", "peak_rss_mb", "peak_rss_mb_after")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def command(photos: Path, preds: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pipelines.cli", "-q", "scene", str(photos), "-o", str(out),
        "--predictions", str(preds), "--set", "fusion.voxel_divisions=48",
        "--set", "sfm.num_threads=1", "--priors", "nerfstudio",
    ]  # fmt: skip


def without_clocks(data: object) -> object:
    if isinstance(data, dict):
        return {k: without_clocks(v) for k, v in data.items() if k not in CLOCKS}
    if isinstance(data, list):
        return [without_clocks(v) for v in data]
    return data


def outputs(out: Path) -> dict[str, bytes]:
    """Final files by name (the output folder's path masked), report.json without clocks."""
    paths = [out / n for n in OUTPUTS] + sorted((out / "priors").rglob("*"))
    files = {
        p.relative_to(out).as_posix(): p.read_bytes().replace(str(out).encode(), b"OUT")
        for p in paths
        if p.is_file()
    }
    report = json.loads((out / "report.json").read_text())
    files["report.json"] = json.dumps(without_clocks(report), sort_keys=True).encode()
    return files


def finished_stages(out: Path) -> str:
    done = [t for t in STAGES if any((d / "done.json").is_file() for d in out.glob(f"work/{t}-*"))]
    return ",".join(done) or "-"


def soak_run(i: int, sig: signal.Signals, delay: float, inputs: tuple, work: Path) -> dict:
    photos, preds, reference = inputs
    out = work / f"run_{i:02d}"
    proc = subprocess.Popen(command(photos, preds, out), cwd=REPO, stderr=subprocess.DEVNULL)
    sent = False
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        sent = True
    stopped = proc.wait()
    stages = finished_stages(out)
    rerun = subprocess.run(command(photos, preds, out), cwd=REPO, capture_output=True, text=True)
    same = rerun.returncode == 0 and outputs(out) == reference
    return {"signal": sig.name, "sent": sent, "delay": delay, "stopped": stopped, "done_at_stop": stages,
            "rerun": rerun.returncode, "identical": same}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="soak-"))
    from tests.cli_helpers import copy_photos, room_names, simulate_predictions

    photos = copy_photos(work / "photos", room_names(6))
    preds = simulate_predictions(work / "preds")
    start = time.perf_counter()
    ref = subprocess.run(command(photos, preds, work / "reference"), cwd=REPO)
    total = time.perf_counter() - start
    assert ref.returncode == 0, "the reference run failed"
    reference = outputs(work / "reference")
    print(f"reference run: {total:.1f} s (wall; noisy on a shared machine)")
    rng = random.Random(args.seed)
    results = []
    for i in range(args.runs):
        sig = SIGNALS[i % len(SIGNALS)]
        result = soak_run(i, sig, rng.uniform(0.0, total), (photos, preds, reference), work)
        results.append(result)
        print(json.dumps(result), flush=True)
    stopped = [r for r in results if r["sent"]]  # unsent: it finished before its delay
    same = sum(r["identical"] for r in stopped)
    print(
        f"{same}/{len(stopped)} interrupted runs resumed to byte-identical outputs "
        f"({len(results) - len(stopped)} finished before their signal)"
    )


if __name__ == "__main__":
    main()
