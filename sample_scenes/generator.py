"""Deterministic procedural sample scenes: photos, exact poses and the ground-truth mesh.

Scene folder layout (other code depends on it):

    SCENE/images/0000.jpg ...  photos, JPEG quality 95
    SCENE/cameras.json         {"width", "height", "K": 3x3, "frames": [{"name", "cam_from_world": 4x4}]}
    SCENE/mesh.ply             ground-truth surface, world frame, metres, vertex colours
    SCENE/scene.json           {"kind", "seed", "num_views", "width", "height", "extent",
                                "generator_version"}

World frame: metres, z up. Poses are OpenCV `cam_from_world`; pixel centres follow COLMAP.
The same arguments give byte-identical files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import open3d as o3d
from PIL import Image

from recon.atomic import write_bytes, write_json
from recon.errors import InputError
from sample_scenes.render import cast, make_raycaster, pixel_rays, shade, sky
from sample_scenes.shapes import SceneMesh, object_layout, room_layout
from sample_scenes.textures import evaluate
from sample_scenes.trajectories import intrinsics, ring_path, room_path

GENERATOR_VERSION = 1
SceneKind = Literal["room", "object"]
SCENE_KINDS: tuple[str, ...] = ("room", "object")
JPEG_QUALITY = 95
IMAGE_NOISE = 1.5  # standard deviation of additive sensor noise, in 8-bit levels
# 2 x 2 supersampling: anti-aliases texture and silhouettes so views stay consistent
SUBPIXELS = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def image_name(index: int) -> str:
    return f"{index:04d}.jpg"


def generate_scene(
    out_dir: str | Path,
    kind: SceneKind = "room",
    seed: int = 0,
    num_views: int = 30,
    width: int = 640,
    height: int = 480,
) -> Path:
    """Generate a scene folder (layout in the module docstring) and return its path.

    kind "room": a box room with furniture, cameras inside on a small loop looking around.
    kind "object": objects on a ground plane, cameras on an arc looking inwards.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {SCENE_KINDS}, got {kind!r}")
    if num_views < 1 or width < 8 or height < 8:
        raise ValueError(f"need num_views >= 1 and an image of at least 8x8, got {num_views} views")
    out = _prepare_folder(Path(out_dir))
    layout_rng = np.random.default_rng([seed, 0])
    path_rng = np.random.default_rng([seed, 1])
    if kind == "room":
        mesh, info = room_layout(layout_rng)
        poses = room_path(path_rng, num_views, info["half"], info["height"])
    else:
        mesh, info = object_layout(layout_rng)
        poses = ring_path(path_rng, num_views, info["radius"])
    K = intrinsics(width, height)
    raycaster = make_raycaster(mesh.vertices, mesh.triangles)
    frames = []
    for index, cam_from_world in enumerate(poses):
        noise_rng = np.random.default_rng([seed, 2, index])
        rgb = render_image(mesh, raycaster, K, cam_from_world, width, height, noise_rng)
        name = image_name(index)
        write_bytes(out / "images" / name, encode_jpeg(rgb))
        frames.append({"name": name, "cam_from_world": cam_from_world.tolist()})
    _remove_stale_images(out / "images", {f["name"] for f in frames})
    write_bytes(out / "mesh.ply", ply_bytes(mesh.vertices, vertex_colors(mesh), mesh.triangles))
    write_json(
        out / "cameras.json", {"width": width, "height": height, "K": K.tolist(), "frames": frames}
    )
    meta = {
        "kind": kind,
        "seed": int(seed),
        "num_views": int(num_views),
        "width": int(width),
        "height": int(height),
        "extent": mesh.extent,
        "generator_version": GENERATOR_VERSION,
    }
    write_json(out / "scene.json", meta)
    return out


def render_image(
    mesh: SceneMesh,
    raycaster: o3d.t.geometry.RaycastingScene,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(H, W, 3) uint8 photo: supersampled shaded texture plus mild sensor noise."""

    origin, dirs = pixel_rays(K, cam_from_world, width, height, SUBPIXELS)
    flat = dirs.reshape(-1, 3)
    hits = cast(raycaster, origin, flat)
    colour = shade(mesh, hits, sky(flat)).reshape(len(SUBPIXELS), height, width, 3).mean(0)
    noisy = colour * 255.0 + rng.normal(0.0, IMAGE_NOISE, size=colour.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def vertex_colors(mesh: SceneMesh) -> np.ndarray:
    """(V, 3) uint8 albedo of each vertex (unshaded texture colour)."""
    colors = np.empty((len(mesh.vertices), 3))
    pts = mesh.vertices.astype(np.float64)
    for k, texture in enumerate(mesh.textures):
        sel = mesh.vertex_surface == k
        colors[sel] = evaluate(texture, pts[sel])
    return np.clip(np.round(colors * 255.0), 0, 255).astype(np.uint8)


def ply_bytes(vertices: np.ndarray, colors: np.ndarray, triangles: np.ndarray) -> bytes:
    """Binary little-endian PLY: float32 xyz + uchar rgb per vertex, int32 triangles."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(triangles)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    vtype = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    vdata = np.empty(len(vertices), dtype=vtype)
    vdata["xyz"], vdata["rgb"] = vertices, colors
    ftype = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    fdata = np.empty(len(triangles), dtype=ftype)
    fdata["n"], fdata["idx"] = 3, triangles
    return header.encode("ascii") + vdata.tobytes() + fdata.tobytes()


def _prepare_folder(out: Path) -> Path:
    """Create `out`; refuse a non-empty folder unless it holds an earlier generated scene."""
    if out.exists() and any(out.iterdir()) and not (out / "scene.json").is_file():
        raise InputError(
            "output folder is not empty and holds no generated scene",
            path=out,
            fix="choose a new or empty folder",
        )
    (out / "images").mkdir(parents=True, exist_ok=True)
    return out


def _remove_stale_images(images: Path, keep: set[str]) -> None:
    """Drop photos left by an earlier generation with more views."""
    for path in sorted(images.glob("*.jpg")):
        if path.name not in keep:
            path.unlink()
