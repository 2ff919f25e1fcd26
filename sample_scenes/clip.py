"""A generated scene filmed as a video: a smooth camera path rendered to an H.264 MP4.

    render_clip(OUT, seed=0, keys=16, per_key=3, rest=6, fps=12, width=320, height=240)

OUT is a scene folder in the `generate_scene` layout (cameras.json, mesh.ply, scene.json,
images/) holding every frame of the clip as `images/frame_{i:06d}.jpg` (the names the video
intake gives the frames it keeps, so simulated predictions and ground-truth poses line up),
plus `OUT/clip.mp4`. The path: the room trajectory of `generate_scene` (keys poses 8-12 deg
apart), each interval split into `per_key` frames (rotation slerped, centre interpolated),
after `rest` frames with the camera still (near-duplicates for frame selection). Frame
`blur_frame` (if >= 0) is motion-blurred (a horizontal box filter) to exercise blur rejection.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation, Slerp

from recon.atomic import write_bytes, write_json
from sample_scenes.generator import (
    GENERATOR_VERSION,
    _prepare_folder,
    encode_jpeg,
    ply_bytes,
    render_image,
    vertex_colors,
)
from sample_scenes.render import make_raycaster
from sample_scenes.shapes import room_layout
from sample_scenes.trajectories import intrinsics, room_path

CRF = 12  # H.264 quality: near-lossless, like a phone's high-bitrate recording


def clip_frame_name(index: int) -> str:
    return f"frame_{index:06d}.jpg"


def smooth_path(keys: list[np.ndarray], per_key: int, rest: int) -> list[np.ndarray]:
    """cam_from_world poses: `rest` copies of the first key, then `per_key` frames per key
    interval (rotation slerp, camera-centre lerp), then the last key."""
    world_from_cam = [np.linalg.inv(k) for k in keys]
    rotations = Rotation.from_matrix([w[:3, :3] for w in world_from_cam])
    slerp = Slerp(np.arange(len(keys)), rotations)
    centres = np.array([w[:3, 3] for w in world_from_cam])
    times = np.concatenate([np.zeros(rest), np.arange((len(keys) - 1) * per_key + 1) / per_key])
    poses = []
    for t in times:
        i = min(int(np.floor(t)), len(keys) - 2)
        w = np.eye(4)
        w[:3, :3] = slerp([t]).as_matrix()[0]
        w[:3, 3] = centres[i] + (t - i) * (centres[i + 1] - centres[i])
        poses.append(np.linalg.inv(w))
    return poses


def motion_blur(rgb: np.ndarray, length: int = 9) -> np.ndarray:
    """(H, W, 3) uint8 smeared horizontally over `length` px (a fast camera pan)."""
    return uniform_filter1d(rgb.astype(np.float32), length, axis=1).round().astype(np.uint8)


def render_clip(
    out_dir: str | Path,
    seed: int = 0,
    keys: int = 16,
    per_key: int = 3,
    rest: int = 6,
    fps: float = 12.0,
    width: int = 320,
    height: int = 240,
    blur_frame: int = -1,
) -> Path:
    """Render the clip and its scene folder (module docstring); returns OUT/clip.mp4."""
    out = _prepare_folder(Path(out_dir))
    mesh, info = room_layout(np.random.default_rng([seed, 0]))
    key_poses = room_path(np.random.default_rng([seed, 1]), keys, info["half"], info["height"])
    poses = smooth_path(key_poses, per_key, rest)
    K = intrinsics(width, height)
    raycaster = make_raycaster(mesh.vertices, mesh.triangles)
    frames = []
    with _Encoder(out / "clip.mp4", fps, width, height) as encoder:
        for index, cam_from_world in enumerate(poses):
            # Sensor noise changes from frame to frame, also while the camera rests.
            rng = np.random.default_rng([seed, 3, index])
            rgb = render_image(mesh, raycaster, K, cam_from_world, width, height, rng)
            if index == blur_frame:
                rgb = motion_blur(rgb)
            encoder.add(rgb)
            name = clip_frame_name(index)
            write_bytes(out / "images" / name, encode_jpeg(rgb))
            frames.append({"name": name, "cam_from_world": cam_from_world.tolist()})
    write_bytes(out / "mesh.ply", ply_bytes(mesh.vertices, vertex_colors(mesh), mesh.triangles))
    write_json(
        out / "cameras.json", {"width": width, "height": height, "K": K.tolist(), "frames": frames}
    )
    meta = {
        "kind": "room",
        "seed": int(seed),
        "num_views": len(frames),
        "width": int(width),
        "height": int(height),
        "extent": mesh.extent,
        "generator_version": GENERATOR_VERSION,
        "clip": {"fps": fps, "keys": keys, "per_key": per_key, "rest": rest, "blur": blur_frame},
    }
    write_json(out / "scene.json", meta)
    return out / "clip.mp4"


class _Encoder:
    """H.264 MP4 writer (PyAV), one RGB frame at a time."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import av

        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001)
        )
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(CRF), "preset": "veryfast"}

    def add(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
