"""Small synthetic scenes with ground truth, rendered with Open3D's RaycastingScene.

Every scene gives a trimesh ground-truth mesh, Frames (camera, cam_from_world, colour image,
sparse observations) and per-view ground-truth z-depth and normals (OpenCV camera frame, facing
the camera). Pixel centres follow COLMAP: ray of pixel (i, j) passes through (j + 0.5, i + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh

from recon.geometry import camera_rays
from recon.records import Camera, Frame, MonoPrediction, SparseObservations
from sample_scenes.trajectories import look_at


@dataclass(frozen=True)
class SyntheticView:
    frame: Frame
    depth: np.ndarray  # (H, W) float32 z-depth, NaN where no surface
    normal: np.ndarray  # (H, W, 3) float32 unit, OpenCV camera frame, zero where no surface


@dataclass(frozen=True)
class SyntheticScene:
    mesh: trimesh.Trimesh  # ground truth, world frame
    views: list[SyntheticView]

    @property
    def frames(self) -> list[Frame]:
        return [v.frame for v in self.views]


def intrinsics(width: int, height: int, fov_x_deg: float = 70.0) -> Camera:
    f = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)
    return Camera(K=K, width=width, height=height)


def render(mesh: trimesh.Trimesh, camera: Camera, cam_from_world: np.ndarray):
    """Ground-truth (depth (H, W) float32, normal (H, W, 3) float32, face ids (H, W))."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)),
    )
    h, w = camera.height, camera.width
    R, t = cam_from_world[:3, :3], cam_from_world[:3, 3]
    dirs = camera_rays(camera.K, h, w) @ R  # rows r -> R^T r: z = 1 rays, so t_hit = z-depth
    origin = np.broadcast_to(-R.T @ t, dirs.shape)
    rays = np.concatenate([origin, dirs], axis=-1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    depth = hit["t_hit"].numpy().astype(np.float32)
    ok = np.isfinite(depth)
    normal = hit["primitive_normals"].numpy().astype(np.float64) @ R.T
    flip = np.sum(normal * camera_rays(camera.K, h, w), axis=-1) > 0
    normal = np.where(flip[..., None], -normal, normal)
    depth[~ok] = np.nan
    normal[~ok] = 0
    faces = np.where(ok, hit["primitive_ids"].numpy().astype(np.int64), -1)
    return depth, normal.astype(np.float32), faces


def box_room_mesh(size=(4.0, 5.0, 3.0), with_table: bool = True) -> trimesh.Trimesh:
    """A closed box room (walls, floor, ceiling) centred on the origin, plus a table block."""
    room = trimesh.creation.box(extents=size)
    parts = [room]
    if with_table:
        table = trimesh.creation.box(extents=(1.0, 0.8, 0.7))
        table.apply_translation((0.4, 0.6, -size[2] / 2 + 0.35))
        parts.append(table)
    return trimesh.util.concatenate(parts)


def plane_mesh(half: float = 2.0) -> trimesh.Trimesh:
    """The square z = 0, |x|, |y| <= half, as two triangles."""
    v = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], float)
    return trimesh.Trimesh(vertices=v, faces=np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def _colour(depth: np.ndarray, normal: np.ndarray) -> np.ndarray:
    rgb = np.clip((normal * 0.5 + 0.5) * 255, 0, 255)
    rgb[~np.isfinite(depth)] = 0
    return rgb.astype(np.uint8)


def make_view(name: str, mesh, camera: Camera, cam_from_world, rng, n_sparse: int = 300):
    depth, normal, _ = render(mesh, camera, cam_from_world)
    sparse = sparse_from_depth(depth, camera, rng, n_sparse)
    frame = Frame(
        name=name, image=_colour(depth, normal), camera=camera,
        cam_from_world=cam_from_world, sparse=sparse,
    )  # fmt: skip
    return SyntheticView(frame=frame, depth=depth, normal=normal)


def sparse_from_depth(depth: np.ndarray, camera: Camera, rng, n: int) -> SparseObservations:
    """n exact sparse points at random valid pixel centres (track 5, error 0.5 px)."""
    ii, jj = np.nonzero(np.isfinite(depth))
    pick = rng.choice(len(ii), size=min(n, len(ii)), replace=False)
    i, j = ii[pick], jj[pick]
    m = len(i)
    return SparseObservations(
        uv=np.stack([j + 0.5, i + 0.5], axis=1).astype(np.float64),
        z=depth[i, j].astype(np.float64),
        reprojection_error=np.full(m, 0.5),
        track_length=np.full(m, 5),
    )


def room_scene(n_views: int = 12, width: int = 96, height: int = 72, seed: int = 0):
    """Cameras on a ring inside a box room, each looking across the room."""
    rng = np.random.default_rng(seed)
    mesh = box_room_mesh()
    camera = intrinsics(width, height)
    views = []
    for k in range(n_views):
        a = 2 * np.pi * k / n_views
        eye = np.array([0.8 * np.cos(a), 0.8 * np.sin(a), 0.1 * np.sin(3 * a)])
        target = np.array([-1.5 * np.cos(a + 0.4), -1.5 * np.sin(a + 0.4), -0.6])
        views.append(make_view(f"v{k:03d}.png", mesh, camera, look_at(eye, target), rng))
    return SyntheticScene(mesh=mesh, views=views)


def plane_scene(n_frontal: int = 4, n_grazing: int = 8, width: int = 80, height: int = 60,
                seed: int = 0) -> SyntheticScene:  # fmt: skip
    """The plane z = 0 seen frontally (from above) by some views and at grazing angles by others."""
    rng = np.random.default_rng(seed)
    mesh = plane_mesh()
    camera = intrinsics(width, height)
    views = []
    for k in range(n_frontal):
        eye = np.array([0.3 * np.cos(k), 0.3 * np.sin(k), 2.5])
        views.append(make_view(f"f{k}.png", mesh, camera, look_at(eye, [0, 0, 0], (0, 1, 0)), rng))
    for k in range(n_grazing):
        a = 2 * np.pi * k / n_grazing
        eye = np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 0.45])
        target = np.array([-0.5 * np.cos(a), -0.5 * np.sin(a), 0.0])
        views.append(make_view(f"g{k}.png", mesh, camera, look_at(eye, target), rng))
    return SyntheticScene(mesh=mesh, views=views)


def oracle_prediction(depth: np.ndarray, space: str, scale: float, shift: float,
                      noise: float = 0.0, rng=None, normal=None) -> MonoPrediction:  # fmt: skip
    """Prediction v with scale * v + shift = metric depth (or disparity), times (1 + noise)."""
    rng = rng or np.random.default_rng(0)
    metric = depth if space == "depth" else 1.0 / depth
    values = (metric * (1 + noise * rng.standard_normal(depth.shape)) - shift) / scale
    return MonoPrediction(values=values.astype(np.float32), space=space, normal=normal)


def smooth_noise(shape: tuple[int, int], sigma_px: float, rng) -> np.ndarray:
    """(H, W) spatially correlated Gaussian noise with unit standard deviation."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return field / field.std()


def smooth_warp(shape: tuple[int, int], amplitude: float, rng, terms: int = 3) -> np.ndarray:
    """(H, W) low-frequency log-depth warp (sum of <= 1.5-cycle cosines), peak ~ amplitude."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros(shape)
    for _ in range(terms):
        fx, fy = rng.uniform(0.2, 1.5, 2)
        phase = rng.uniform(0, 2 * np.pi)
        out += np.cos(2 * np.pi * (fx * x + fy * y) + phase)
    return amplitude * out / np.abs(out).max()


def observed_points(scene: SyntheticScene, step: int = 3) -> np.ndarray:
    """(N, 3) world points of the ground-truth depth of all views (the observed surface)."""
    from recon.geometry import backproject, transform_points

    chunks = []
    for v in scene.views:
        pts = backproject(v.depth, v.frame.camera.K)[::step, ::step].reshape(-1, 3)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        chunks.append(transform_points(v.frame.world_from_cam, pts))
    return np.concatenate(chunks)
