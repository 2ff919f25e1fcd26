"""The 3D view's data: decimated mesh, camera frustums and sparse points, packed for a page.

Arrays travel as base64 of little-endian float32 / uint32 / uint8, which the page turns into
typed arrays without parsing numbers. Coordinates stay in the run's world frame (COLMAP's);
the page is told which way is up (the cameras' mean up vector).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_FACES = 60_000  # page's mesh bound: ~1.5 MB of base64
MAX_POINTS = 40_000  # sparse points shown (a uniform random subset beyond)


def b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def decimate(path: Path, max_faces: int = MAX_FACES):
    """Mesh file -> ((V, 3) float32 vertices, (F, 3) uint32 faces, (V, 3) float colours in
    [0, 1]) with about max_faces faces at most, or None for an empty mesh.

    Vertex clustering on a grid sized from the surface area (a face per ~cell^2 / 2): ~0.2 s
    CPU for 290k faces, where quadric decimation took ~7 s; at page size they look alike.
    Colours are averaged per cell.
    """
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) == 0:
        return None
    cell = np.sqrt(2.8 * mesh.get_surface_area() / max_faces)  # 1.4x: clustering merges less
    for _ in range(4):  # a rough surface keeps more faces per cell: coarsen until it fits
        if len(mesh.triangles) <= max_faces:
            break
        small = mesh.simplify_vertex_clustering(cell)
        if len(small.triangles) <= max_faces:
            mesh = small
            break
        cell *= np.sqrt(len(small.triangles) / max_faces)
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.triangles, dtype=np.uint32)
    colors = np.asarray(mesh.vertex_colors)
    if len(colors) != len(vertices):
        colors = np.full((len(vertices), 3), 0.7)
    return vertices, faces, np.clip(colors, 0.0, 1.0)


def decimated_mesh(path: Path, max_faces: int = MAX_FACES) -> dict | None:
    """The decimated mesh as {"positions", "indices", "colors"} (base64) and its face count."""
    mesh = decimate(path, max_faces)
    if mesh is None:
        return None
    vertices, faces, colors = mesh
    return {
        "positions": b64(vertices, "<f4"),
        "indices": b64(faces, "<u4"),
        "colors": b64(np.round(colors * 255), "u1"),
        "faces": int(len(faces)),
    }


def read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """sparse_points.ply -> ((N, 3) float64 xyz, (N, 3) uint8 rgb)."""
    import trimesh

    cloud = trimesh.load(path, process=False)
    xyz = np.asarray(cloud.vertices, dtype=np.float64)
    rgb = np.asarray(getattr(cloud, "colors", np.zeros((0, 4))))[:, :3]
    if len(rgb) != len(xyz):
        rgb = np.full((len(xyz), 3), 200)
    return xyz, rgb.astype(np.uint8)


def sparse_points(path: Path | None, max_points: int = MAX_POINTS) -> tuple[np.ndarray, dict]:
    """sparse_points.ply -> ((N, 3) xyz, payload with a subset of at most max_points)."""
    if path is None:
        return np.zeros((0, 3)), {}
    xyz, rgb = read_points(path)
    keep = np.arange(len(xyz))
    if len(xyz) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(xyz), max_points, replace=False))
    payload = {"positions": b64(xyz[keep], "<f4"), "colors": b64(rgb[keep], "u1")}
    return xyz, payload


def frustum_lines(cameras: dict[str, dict], size: float) -> np.ndarray:
    """(V*8, 2, 3) line segments: apex to the 4 image corners and the image rectangle,
    at z = size in front of each camera (world units)."""
    segments = []
    for cam in cameras.values():
        K = np.asarray(cam["K"], dtype=np.float64)
        world_from_cam = np.asarray(cam["world_from_cam"], dtype=np.float64)
        w, h = cam["width"], cam["height"]
        pix = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
        corners_cam = (np.linalg.inv(K) @ pix.T).T * size  # z = size
        corners = corners_cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
        apex = world_from_cam[:3, 3]
        for i in range(4):
            segments.append((apex, corners[i]))
            segments.append((corners[i], corners[(i + 1) % 4]))
    return np.asarray(segments, dtype=np.float64).reshape(-1, 2, 3)


def camera_up(cameras: dict[str, dict]) -> np.ndarray:
    """Unit world vector the cameras agree is up (OpenCV: camera up is -y)."""
    if not cameras:
        return np.array([0.0, 1.0, 0.0])
    ups = [-np.asarray(c["world_from_cam"])[:3, 1] for c in cameras.values()]
    up = np.mean(ups, axis=0)
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-9 else np.array([0.0, 1.0, 0.0])


def scene_payload(run) -> dict:
    """Everything the page's 3D view draws, plus where to put the viewer's camera."""
    mesh = decimated_mesh(run.mesh_path) if run.mesh_path is not None else None
    xyz, points = sparse_points(run.sparse_path)
    centers = np.array([np.asarray(c["world_from_cam"])[:3, 3] for c in run.cameras.values()])
    ref = xyz if len(xyz) else centers
    if len(ref) == 0:
        target, radius = np.zeros(3), 1.0
    else:
        lo, hi = np.percentile(ref, [2, 98], axis=0)
        target, radius = (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
    frustum_size = 0.08 * radius
    lines = frustum_lines(run.cameras, frustum_size) if run.cameras else np.zeros((0, 2, 3))
    return {
        "mesh": mesh,
        "points": points or None,
        "frustums": b64(lines.reshape(-1, 3), "<f4") if len(lines) else None,
        "up": camera_up(run.cameras).tolist(),
        "target": target.tolist(),
        "radius": radius,
    }
