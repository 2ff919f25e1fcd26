"""Video intake: flow, frame choice (rest, blur, rate), streamed decoding with timestamps,
the no-motion error, timestamps in the TUM export, HEIC photos. Small synthetic inputs; the
real clips and the scored generated clip are in test_video_e2e.py."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from recon.images import list_images, load_rgb, normalize_image
from recon.tracking import sharpness, sparse_flow
from recon.video import (
    Candidate,
    NoCameraMotionError,
    SelectionStats,
    VideoParams,
    check_camera_motion,
    probe_video,
    select_frames,
    video_candidates,
    window_length,
)
from tests.cli_helpers import TINY_MODELS, assert_one_line_error, expect_no_motion_error, run_cli

SIZE = (120, 160)  # (H, W) of the synthetic frames


def _world(seed: int = 0) -> np.ndarray:
    """A large smooth random texture the synthetic camera pans across, (H, W) in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random((SIZE[0] + 40, 4 * SIZE[1])), 2.0)
    return (img - img.min()) / (img.max() - img.min())


def _view(world: np.ndarray, x: int) -> np.ndarray:
    return world[20 : 20 + SIZE[0], x : x + SIZE[1]].astype(np.float32)


def _pan(offsets: list[int], blur: set[int] = frozenset()) -> list[np.ndarray]:
    world = _world()
    frames = [_view(world, x) for x in offsets]
    for i in blur:
        frames[i] = ndimage.uniform_filter1d(frames[i], 9, axis=1)
    return frames


def _candidates(greys: list[np.ndarray], fps: float = 10.0):
    for i, g in enumerate(greys):
        rgb = (np.repeat(g[..., None], 3, axis=2) * 255).astype(np.uint8)
        yield Candidate(i, i / fps, g, lambda rgb=rgb: rgb)


def test_sparse_flow_recovers_a_known_shift():
    world = _world()
    a, b = _view(world, 50), _view(world, 56)  # content moves 6 px to the left
    flow = sparse_flow(a, b)
    assert flow.tracked_fraction > 0.8
    assert np.allclose(np.median(flow.flow[flow.ok], axis=0), [-6.0, 0.0], atol=0.1)


def test_sharpness_drops_with_blur():
    g = _view(_world(), 0)
    assert sharpness(ndimage.uniform_filter1d(g, 9, axis=1)) < 0.5 * sharpness(g)


def test_selection_skips_a_resting_camera_and_a_blurred_frame():
    # 6 frames at rest, then a pan of 4 px per frame; frame 12 is motion-blurred.
    offsets = [0] * 6 + [4 * k for k in range(1, 20)]
    params = VideoParams(min_parallax=0.02, blur_ratio=0.5)
    stats = SelectionStats()
    kept = list(select_frames(_candidates(_pan(offsets, blur={12})), 1, params, stats))
    indices = [k.index for k in kept]
    assert indices[0] == 0 and not set(indices) & {1, 2, 3, 4, 5}  # rest adds nothing
    assert stats.blurred == [12] and 12 not in indices
    # 2% of the 200 px diagonal = 4 px: every other pan frame (8 px) is kept.
    gaps = np.diff([offsets[i] for i in indices[1:]])
    assert np.all(gaps >= 4) and np.all(gaps <= 12)
    assert all(k.parallax >= params.min_parallax for k in kept[1:])
    assert [k.time for k in kept] == sorted(k.time for k in kept)
    assert stats.decoded == len(offsets) and stats.duplicates >= 5


def test_window_follows_rate_and_target_count():
    params = VideoParams(fps=3.0, max_frames=100)
    assert window_length(30.0, 300, params) == 10  # 3 candidates per second
    assert window_length(30.0, 6000, params) == 60  # 6000 frames -> at most 100
    assert window_length(3.0, 48, params) == 1


def _encode(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast"}
        for g in frames:
            rgb = np.repeat((g[..., None] * 255).astype(np.uint8), 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_frames_stream_with_their_timestamps(tmp_path):
    clip = _encode(tmp_path / "pan.mp4", _pan([5 * k for k in range(30)]), fps=10)
    info = probe_video(clip)
    assert (info.width, info.height, info.frames) == (SIZE[1], SIZE[0], 30)
    stats = SelectionStats()
    params = VideoParams(fps=5.0)  # 10 fps clip -> windows of 2 frames
    kept = list(select_frames(video_candidates(clip, info, 480), 2, params, stats))
    assert stats.decoded == 30 and stats.candidates == 15
    assert len(kept) >= 10
    for k in kept:
        assert k.time == pytest.approx(k.index / 10.0, abs=1e-6)
        assert k.rgb.shape == (*SIZE, 3) and k.name == f"frame_{k.index:06d}.jpg"


def test_no_motion_is_a_typed_error_naming_the_single_image_command():
    stats = SelectionStats(decoded=57, max_parallax=0.002)
    with pytest.raises(NoCameraMotionError) as err:
        check_camera_motion(1, stats, Path("still.mp4"))
    assert "no camera motion" in str(err.value) and "lotus-recon image" in str(err.value)
    check_camera_motion(2, stats, Path("moving.mp4"))  # enough frames: no error


def test_static_clip_gets_a_one_line_error_and_exit_1(tmp_path, capfd):
    g = _view(_world(), 30)
    rng = np.random.default_rng(1)
    # A fixed camera: the same view with sensor noise in every frame.
    frames = [np.clip(g + rng.normal(0, 0.01, g.shape), 0, 1).astype(np.float32) for _ in range(40)]
    clip = _encode(tmp_path / "still.mp4", frames)
    expect_no_motion_error(clip, tmp_path / "out", capfd)


def test_tum_export_carries_the_clip_timestamps(tmp_path):
    from recon.priors import write_priors
    from recon.records import Camera, Frame

    cam = Camera(K=np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]), width=64, height=48)
    times = {"frame_000000.jpg": 0.0, "frame_000007.jpg": 0.291958, "frame_000019.jpg": 0.792458}
    frames = [
        Frame(n, np.zeros((48, 64, 3), np.uint8), cam, np.eye(4) @ _shift(i))
        for i, n in enumerate(times)
    ]
    depths = [np.full((48, 64), 2.0, np.float32) for _ in frames]
    from recon.priors import write_prior_views
    from recon.priors.common import prepare_views

    views = prepare_views(frames, depths, None, None)
    write_prior_views("tum", tmp_path / "tum", views, timestamps=times)
    rows = [r.split() for r in (tmp_path / "tum" / "rgb.txt").read_text().splitlines()]
    stamps = [float(r[0]) for r in rows if not r[0].startswith("#")]
    assert stamps == pytest.approx(list(times.values()), abs=1e-6)
    gt = (tmp_path / "tum" / "groundtruth.txt").read_text().splitlines()
    assert [float(r.split()[0]) for r in gt if not r.startswith("#")] == pytest.approx(stamps)
    for r in rows:
        if not r[0].startswith("#"):
            assert (tmp_path / "tum" / r[1]).is_file()
    # Without timestamps (photos) frames stay 1 s apart.
    write_priors("tum", tmp_path / "plain", frames, depths)
    plain = (tmp_path / "plain" / "rgb.txt").read_text().splitlines()
    assert [r.split()[0] for r in plain if not r.startswith("#")] == [
        "0.000000",
        "1.000000",
        "2.000000",
    ]


def _shift(i: int) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = 0.1 * i
    return T


def test_heic_photos_are_read(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    rng = np.random.default_rng(0)
    pixels = ndimage.gaussian_filter(rng.integers(0, 255, (96, 128, 3)).astype(float), (3, 3, 0))
    pixels = pixels.astype(np.uint8)
    heif = pillow_heif.from_bytes(mode="RGB", size=(128, 96), data=pixels.tobytes())
    heif.save(tmp_path / "IMG_0001.HEIC", quality=95)
    names, skipped = list_images(tmp_path)
    assert names == ["IMG_0001.HEIC"] and not skipped
    rgb = load_rgb(tmp_path / "IMG_0001.HEIC")
    assert rgb.shape == (96, 128, 3)
    assert np.abs(rgb.astype(int) - pixels).mean() < 4  # lossy, but the same picture
    size, factor = normalize_image(tmp_path / "IMG_0001.HEIC", tmp_path / "out" / "a.png", 2000)
    assert size == (128, 96) and factor == 1.0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), rgb)


def test_a_frame_folder_is_a_sequence_with_its_own_names(tmp_path):
    from pipelines.scene_config import SceneConfig
    from pipelines.sequence import intake, intake_fingerprint, sfm_params
    from pipelines.workspace import Workspace

    frames = tmp_path / "frames"
    frames.mkdir()
    offsets = [0] * 4 + [6 * k for k in range(1, 12)]  # at rest, then a pan
    for i, g in enumerate(_pan(offsets)):
        Image.fromarray((g * 255).astype(np.uint8)).convert("RGB").save(frames / f"{i:04d}.png")
    config = SceneConfig()
    assert sfm_params(frames, config).matcher == "auto"  # a plain photo folder
    config = SceneConfig(video=VideoParams(sequence=True, sequence_fps=10.0, fps=10.0))
    assert sfm_params(frames, config).matcher == "sequential"
    with Workspace(tmp_path / "out") as ws:
        stage = ws.stage("images", None, intake_fingerprint(frames, config))
        image_set, timestamps = intake(frames, stage, config)
    assert image_set.names == list(timestamps) and image_set.names[0] == "0000.png"
    assert not {"0001.png", "0002.png", "0003.png"} & set(image_set.names)  # at rest
    assert len(image_set.names) >= 8
    for name, t in timestamps.items():
        assert t == pytest.approx(int(name[:4]) / 10.0)
        assert (image_set.root / name).is_file()


def test_depth_disagreement_is_zero_for_consistent_depth_and_sees_a_scale_error():
    from recon.temporal import PosedCamera, pair_disagreement

    K = np.array([[80.0, 0, 40], [0, 80.0, 30], [0, 0, 1]])
    b_from_world = np.eye(4)
    b_from_world[0, 3] = -0.2  # camera B 0.2 to the right of A
    a, b = PosedCamera("a", K, np.eye(4)), PosedCamera("b", K, b_from_world)
    wall = np.full((60, 80), 3.0)  # a fronto-parallel wall 3 units away: same depth in B
    assert pair_disagreement(a, wall, b, wall) == pytest.approx(0.0, abs=1e-9)
    assert pair_disagreement(a, wall, b, 1.1 * wall) == pytest.approx(1 / 1.1 * 0.1, rel=1e-3)


def test_a_missing_video_is_a_one_line_error(tmp_path, capfd):
    argv = ["-q", "scene", tmp_path / "nope.mp4", "-o", tmp_path / "out", *TINY_MODELS]
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, "nope.mp4", "video file not found")
