"""Ray casting of a triangle mesh with Open3D (CPU), in COLMAP pixel conventions.

The ray of pixel (row i, col j) passes through (u, v) = (j + 0.5, i + 0.5) in K's coordinates:
direction K^-1 [u, v, 1] in the OpenCV camera frame, rotated to the world. Its z component
in the camera frame is 1, so the hit parameter `t` of a ray is the z-depth of the hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from sample_scenes.shapes import SceneMesh
from sample_scenes.textures import evaluate

LIGHT_DIR = np.array([0.45, -0.3, 0.84]) / np.linalg.norm([0.45, -0.3, 0.84])  # world, unit
AMBIENT = 0.3


@dataclass(frozen=True)
class Hits:
    """Ray-cast results for (N,) rays."""

    t: np.ndarray  # (N,) float32 ray parameter (z-depth for K^-1 rays); inf = miss
    triangle: np.ndarray  # (N,) int64 triangle index; -1 = miss
    normal_world: np.ndarray  # (N, 3) float64 unit face normal, world frame, as wound
    points: np.ndarray  # (N, 3) float64 hit points, world frame (NaN on a miss)
    directions: np.ndarray  # (N, 3) float64 ray directions, world frame


def make_raycaster(vertices: np.ndarray, triangles: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    """A RaycastingScene over (V, 3) float32 vertices and (T, 3) triangle indices."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(triangles, dtype=np.uint32)),
    )
    return scene


def pixel_rays(
    K: np.ndarray, cam_from_world: np.ndarray, width: int, height: int, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rays through sub-pixel positions of every pixel.

    offsets: (S, 2) sub-pixel (du, dv) in [0, 1) from the pixel's top-left corner; (0.5, 0.5)
    is the pixel centre. Returns origin (3,) and directions (S, H, W, 3) in the world frame,
    each with camera-frame z = 1.
    """
    jj, ii = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    k_inv = np.linalg.inv(K)
    rot_t = cam_from_world[:3, :3].T  # world_from_cam rotation
    out = np.empty((len(offsets), height, width, 3))
    for s, (du, dv) in enumerate(offsets):
        uv1 = np.stack([jj + du, ii + dv, np.ones_like(jj)], axis=-1)
        out[s] = uv1 @ (rot_t @ k_inv).T
    origin = -rot_t @ cam_from_world[:3, 3]
    return origin, out


def cast(scene: o3d.t.geometry.RaycastingScene, origin: np.ndarray, dirs: np.ndarray) -> Hits:
    """Cast rays from `origin` (3,) along `dirs` (N, 3) (world frame)."""
    rays = np.empty((len(dirs), 6), dtype=np.float32)
    rays[:, :3] = origin
    rays[:, 3:] = dirs
    res = scene.cast_rays(o3d.core.Tensor(rays), nthreads=0)
    t = res["t_hit"].numpy()
    hit = np.isfinite(t)
    triangle = np.where(hit, res["primitive_ids"].numpy().astype(np.int64), -1)
    normal = res["primitive_normals"].numpy().astype(np.float64)
    points = np.where(hit[:, None], origin + t[:, None].astype(np.float64) * dirs, np.nan)
    return Hits(t=t, triangle=triangle, normal_world=normal, points=points, directions=dirs)


def depth_and_normal(
    scene: o3d.t.geometry.RaycastingScene,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray, Hits]:
    """Ground truth at pixel centres: z-depth (H, W) float32 metres (0 = no hit) and unit
    normals (H, W, 3) float32 in the OpenCV camera frame facing the camera (0 = no hit)."""
    origin, dirs = pixel_rays(K, cam_from_world, width, height, np.array([[0.5, 0.5]]))
    hits = cast(scene, origin, dirs.reshape(-1, 3))
    hit = np.isfinite(hits.t)
    depth = np.where(hit, hits.t, 0.0).astype(np.float32).reshape(height, width)
    n_world = facing(hits.normal_world, hits.directions)
    n_cam = n_world @ cam_from_world[:3, :3].T
    n_cam = np.where(hit[:, None], n_cam, 0.0)
    return depth, n_cam.astype(np.float32).reshape(height, width, 3), hits


def facing(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Flip (N, 3) normals so that dot(normal, ray direction) <= 0 (towards the viewer)."""
    sign = np.where(np.einsum("ij,ij->i", normals, directions) > 0, -1.0, 1.0)
    return normals * sign[:, None]


def shade(mesh: SceneMesh, hits: Hits, background: np.ndarray) -> np.ndarray:
    """Linear RGB (N, 3) in [0, 1]: procedural albedo x (ambient + half-Lambert light);
    rays that miss get `background` (N, 3)."""
    colour = background.copy()
    hit = hits.triangle >= 0
    surface = mesh.surface[hits.triangle[hit]]
    pts = hits.points[hit]
    albedo = np.empty((len(pts), 3))
    for k in np.unique(surface):
        sel = surface == k
        albedo[sel] = evaluate(mesh.textures[k], pts[sel])
    n = facing(hits.normal_world[hit], hits.directions[hit])
    light = AMBIENT + (1.0 - AMBIENT) * (0.5 + 0.5 * (n @ LIGHT_DIR))
    colour[hit] = albedo * light[:, None]
    return colour


def sky(directions: np.ndarray) -> np.ndarray:
    """Smooth featureless background colour (N, 3) for rays that hit nothing."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    a = np.clip(d[:, 2], 0.0, 1.0)[:, None]
    return (1 - a) * np.array([0.85, 0.88, 0.92]) + a * np.array([0.55, 0.7, 0.9])
