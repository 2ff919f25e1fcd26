"""Clips end to end through the CLI: a generated clip scored against its ground truth and
against the same scene's still frames, and the two real clips of ../shared/data/video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from sample_scenes import LOTUS_LIKE, load_scene, write_predictions
from sample_scenes.clip import render_clip
from sample_scenes.scoring import SceneScorer, to_ground_truth_frame
from tests.cli_helpers import FAST, expect_no_motion_error, run_cli

ROOT = Path(__file__).resolve().parents[1]
VIDEO_DATA = ROOT.parent / "shared" / "data" / "video"
MODELS = ROOT / "models"
KEYS, PER_KEY, REST, FPS = 10, 3, 4, 12
# Small clip: 4 frames at rest, then 27 frames along 10 key poses of the room path.
CLIP_ARGS = {"keys": KEYS, "per_key": PER_KEY, "rest": REST, "fps": FPS, "width": 256,
             "height": 192, "blur_frame": REST + 7}  # fmt: skip


@pytest.fixture(scope="module")
def clip_runs(tmp_path_factory):
    """The generated clip as video and its key frames as still photos, both with simulated
    Lotus predictions, each run through `scene`."""
    root = tmp_path_factory.mktemp("clip")
    clip = render_clip(root / "scene", seed=0, **CLIP_ARGS)
    preds = write_predictions(root / "scene", root / "pred", "disparity", 0, LOTUS_LIKE)
    stills = root / "stills"
    stills.mkdir()
    # Still photos along the same path, as many as the video's candidates after the rest:
    # every 2nd frame, rendered straight to JPEG (no H.264, no frame choice).
    for i in range(REST, REST + (KEYS - 1) * PER_KEY + 1, 2):
        name = f"frame_{i:06d}.jpg"
        shutil.copy2(root / "scene" / "images" / name, stills / name)
    # 6 candidates per second of the 12 fps clip: windows of 2 frames.
    video_set = ["--set", "video.fps=6", "--set", "video.min_parallax=0.02"]
    outs = {}
    for tag, source, extra in (("video", clip, video_set), ("stills", stills, [])):
        out = root / f"out_{tag}"
        from pipelines.cli import main

        # One SfM thread: multi-threaded mapping differs from run to run (and so would F@1%).
        code = main(["-q", "scene", str(source), "-o", str(out), "--predictions", str(preds)]
                    + FAST + ["--set", "sfm.num_threads=1"] + extra)  # fmt: skip
        assert code == 0, tag
        outs[tag] = out
    return load_scene(root / "scene"), outs


def _f1(scene, out: Path) -> float:
    mesh = trimesh.load(out / "mesh.ply", process=False)
    mesh_gt, _ = to_ground_truth_frame(mesh, out / "cameras.json", scene)
    return SceneScorer(scene, count=60_000).metrics(mesh_gt, count=40_000)["F@1%_seen"]


def test_generated_clip_frames_are_chosen_and_registered(clip_runs):
    _, outs = clip_runs
    video = json.loads((outs["video"] / "report.json").read_text())["video"]
    sel = video["selection"]
    assert sel["decoded"] == REST + (KEYS - 1) * PER_KEY + 1
    kept = list(video["timestamps"])
    assert len(kept) == sel["kept"] >= 8
    assert f"frame_{REST + 7:06d}.jpg" not in kept  # the blurred frame is never chosen
    # The camera at rest gives one frame (the sharpest of its window), not one per window.
    assert sum(f"frame_{i:06d}.jpg" in kept for i in range(REST)) == 1
    for name, t in video["timestamps"].items():  # frame i at i / fps seconds
        assert t == pytest.approx(int(name[6:12]) / FPS, abs=1e-3)
    assert video["registered"] >= 0.95 * len(kept)
    tc = video["temporal_consistency"]
    # Per-frame fits remove most of the simulated per-frame scale/shift flicker.
    assert tc["after"] < 0.5 * tc["before"]


def test_generated_clip_mesh_scores_like_the_still_frames(clip_runs):
    scene, outs = clip_runs
    f_video, f_stills = _f1(scene, outs["video"]), _f1(scene, outs["stills"])
    assert f_video > 0.5
    assert f_video >= f_stills - 0.03, (f_video, f_stills)


@pytest.mark.skipif(not VIDEO_DATA.is_dir(), reason="needs ../shared/data/video")
def test_real_static_clip_fails_clearly(tmp_path, capfd):
    expect_no_motion_error(VIDEO_DATA / "static_camera_plant.mp4", tmp_path / "out", capfd)


def _road_plane_predictions(folder: Path, frames: int, height: int, width: int) -> Path:
    """One npz per frame of the drive: the disparity of a flat road below the horizon (it
    grows linearly with the image row). A stand-in for a depth model, enough to align and
    export each frame; this test checks registration, timing and the export, not depth."""
    folder.mkdir()
    rows = (np.arange(height) + 0.5)[:, None] / height
    disparity = np.repeat(np.maximum(rows - 0.4, 0.02), width, axis=1).astype(np.float32)
    for i in range(frames):
        np.savez(folder / f"frame_{i:06d}.npz", values=disparity, space=np.array("disparity"))
    return folder


@pytest.mark.skipif(not VIDEO_DATA.is_dir(), reason="needs ../shared/data/video")
def test_real_street_drive_gives_tum_priors_with_its_timestamps(tmp_path, capfd):
    """The 48-frame, 3 fps drive, thinned to 16 frames (1 s apart) to keep the test short."""
    out = tmp_path / "out"
    preds = _road_plane_predictions(tmp_path / "pred", 48, 352, 1216)
    argv = ["-q", "priors", VIDEO_DATA / "kitti_street_drive.mp4", "-o", out, "--format", "tum",
            "--predictions", preds, "--set", "video.max_frames=16",
            "--set", "sfm.max_image_size=640", "--set", "sfm.max_num_features=2048"]  # fmt: skip
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    video = report["video"]
    assert video["selection"]["decoded"] == 48 and video["selection"]["kept"] == 16
    assert video["registered"] >= 14 and report["sfm"]["matcher"] == "sequential"
    names = dict(line.split() for line in (out / "tum" / "names.txt").read_text().splitlines())
    assert len(names) >= 4  # frames with an aligned depth map (8 of 15 in a run here)
    for stamp, name in names.items():  # 3 fps: frame i at i / 3 s
        assert float(stamp) == pytest.approx(int(name[6:12]) / 3.0, abs=1e-3)
        assert (out / "tum" / "depth" / f"{stamp}.png").is_file()
    assert list(names) == sorted(names, key=float)
