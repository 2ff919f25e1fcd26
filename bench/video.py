"""Video intake benchmark (printed, never asserted).

1. A generated room filmed as a clip (sample_scenes.clip) with simulated Lotus predictions,
   run through `lotus-recon scene` as a video and as its key frames (still photos): frames
   decoded / kept, frame-selection time as a share of the whole run, registration rate, and
   F@1% of each mesh against the ground truth.
2. Peak memory of decoding + frame selection on a synthetic 1080p clip (default 60 s at
   24 fps), generated here into a temp folder, measured in a fresh process and compared with
   what holding the decoded clip would take.

    python bench/video.py [--seconds 60] [--fps 24] [--keys 16] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_scene(source: Path, out: Path, preds: Path, extra: list[str]) -> dict:
    from pipelines.cli import main

    start = time.perf_counter()
    code = main(["-q", "scene", str(source), "-o", str(out), "--predictions", str(preds), *extra])
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"scene run failed on {source} (exit {code})")
    report = json.loads((out / "report.json").read_text())
    report["wall"] = wall
    return report


def f_score(scene, out: Path) -> float:
    import trimesh

    from sample_scenes.scoring import SceneScorer, to_ground_truth_frame

    mesh = trimesh.load(out / "mesh.ply", process=False)
    mesh_gt, _ = to_ground_truth_frame(mesh, out / "cameras.json", scene)
    return SceneScorer(scene).metrics(mesh_gt)["F@1%_seen"]


def clip_vs_stills(work: Path, keys: int, per_key: int, rest: int, fps: float) -> None:
    from sample_scenes import LOTUS_LIKE, load_scene, write_predictions
    from sample_scenes.clip import render_clip

    clip = render_clip(work / "scene", 0, keys, per_key, rest, fps, 384, 288, rest + 7)
    preds = write_predictions(work / "scene", work / "pred", "disparity", 0, LOTUS_LIKE)
    stills = work / "stills"
    stills.mkdir()
    # Stills along the same path, as many as the video's candidates (every 2nd frame after
    # the rest), straight to JPEG: the difference is H.264 and the frame choice.
    for i in range(rest, rest + (keys - 1) * per_key + 1, 2):
        name = f"frame_{i:06d}.jpg"
        shutil.copy2(work / "scene" / "images" / name, stills / name)
    scene = load_scene(work / "scene")
    video = run_scene(clip, work / "out_video", preds, ["--set", f"video.fps={fps / 2:g}"])
    photos = run_scene(stills, work / "out_stills", preds, [])
    sel, v = video["video"]["selection"], video["video"]
    total = sum(video["seconds"].values())
    print(f"generated clip: {sel['decoded']} frames decoded at {fps:g} fps, {sel['kept']} kept "
          f"({sel['blurred']} blurred, {sel['near_duplicates']} near-duplicates skipped)")  # fmt: skip
    print(f"  frame selection: {video['seconds']['images']:.1f} s of {total:.1f} s "
          f"({100 * video['seconds']['images'] / total:.1f} % of the run)")  # fmt: skip
    print(f"  registered: {v['registered']}/{sel['kept']} "
          f"({100 * v['registered'] / sel['kept']:.0f} %)")  # fmt: skip
    tc = v["temporal_consistency"]
    print(f"  depth disagreement of consecutive frames: {tc['before']:.3f} before alignment, "
          f"{tc['after']:.3f} after")  # fmt: skip
    f_v, f_s = f_score(scene, work / "out_video"), f_score(scene, work / "out_stills")
    print(f"  stills: {photos['sfm']['num_registered']}/{photos['sfm']['num_images']} registered; run "
          f"{photos['wall']:.0f} s (video: {video['wall']:.0f} s)")  # fmt: skip
    print(f"  F@1% (seen): video {f_v:.3f}, {photos['sfm']['num_images']} stills {f_s:.3f}, "
          f"difference {f_v - f_s:+.3f}")  # fmt: skip


def write_synthetic_1080p(path: Path, seconds: float, fps: int) -> int:
    """A panning 1920x1080 H.264 clip (a random texture slid sideways); returns frames."""
    import av
    from scipy import ndimage

    rng = np.random.default_rng(0)
    tex = ndimage.gaussian_filter(rng.random((540, 1600)), 1.5)
    tex = ((tex - tex.min()) / np.ptp(tex) * 255).astype(np.uint8)
    tex = np.repeat(np.repeat(tex, 2, axis=0), 2, axis=1)  # 1080 x 3200
    frames = int(seconds * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            x = int(1200 * (0.5 - 0.5 * np.cos(2 * np.pi * i / frames)))  # back and forth
            grey = tex[:, x : x + 1920]
            rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


MEMORY_PROBE = """
import resource, sys, time
from pathlib import Path
from recon.video import SelectionStats, VideoParams, probe_video, select_frames
from recon.video import video_candidates, window_length
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
path = Path(sys.argv[1]); params = VideoParams(); info = probe_video(path)
stats = SelectionStats(); start = time.perf_counter()
kept = sum(1 for _ in select_frames(video_candidates(path, info, params.analysis_size),
           window_length(info.fps, info.frames, params), params, stats))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(base, peak, stats.decoded, kept, time.perf_counter() - start)
"""


def memory(work: Path, seconds: float, fps: int) -> None:
    clip = work / "synthetic_1080p.mp4"
    start = time.perf_counter()
    frames = write_synthetic_1080p(clip, seconds, fps)
    print(f"synthetic 1080p clip: {seconds:g} s at {fps} fps ({frames} frames, "
          f"{clip.stat().st_size / 1e6:.1f} MB, encoded in {time.perf_counter() - start:.0f} s)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(clip)], capture_output=True,
                         text=True, check=True, cwd=ROOT)  # fmt: skip
    base, peak, decoded, kept, wall = (float(x) for x in out.stdout.split())
    whole = frames * 1920 * 1080 * 3 / 2**20
    print(f"  decoded {decoded:.0f} frames, kept {kept:.0f}, in {wall:.0f} s")
    print(f"  peak RSS {peak:.0f} MB ({peak - base:.0f} MB above the {base:.0f} MB after imports); "
          f"holding the decoded clip as RGB would take {whole:.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--keys", type=int, default=16, help="key poses of the generated clip")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-clip", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_clip:
            clip_vs_stills(Path(tmp) / "clip", args.keys, 3, 6, 12.0)
        if not args.skip_memory:
            memory(Path(tmp), args.seconds, args.fps)


if __name__ == "__main__":
    main()
