"""`lotus-recon view OUT`: a viser viewer of a finished run.

Shows the mesh, each camera as a frustum with its photo, the sparse points, and, per view, its
aligned depth lifted to a point cloud (off until its checkbox is ticked). Everything is read
from OUT (pipelines.report.collect); nothing is recomputed but the lifting of depth to points
for display. Coordinates are the run's world frame (OpenCV cameras, COLMAP world).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from pipelines.report.collect import RunData, load_run, view_npz
from recon.errors import InputError

log = logging.getLogger(__name__)

VIEWER_MAX_FACES = 400_000  # decimation bound for the browser (the file on disk is untouched)
PHOTO_SIZE = 256  # px, long side of the photo shown in each frustum


def depth_points(depth: np.ndarray, cam: dict, max_points: int, rng: np.random.Generator):
    """(N, 3) world points of an (H, W) z-depth map (0 = unknown), a random subset."""
    h, w = depth.shape
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    if len(u) > max_points:
        keep = rng.choice(len(u), max_points, replace=False)
        u, v = u[keep], v[keep]
    K = np.asarray(cam["K"], dtype=np.float64).copy()
    K[0] *= w / cam["width"]
    K[1] *= h / cam["height"]
    pix = np.stack([u + 0.5, v + 0.5, np.ones(len(u))], axis=1)  # COLMAP pixel centres
    cam_pts = (np.linalg.inv(K) @ pix.T).T * depth[v, u, None]
    world_from_cam = np.asarray(cam["world_from_cam"], dtype=np.float64)
    return cam_pts @ world_from_cam[:3, :3].T + world_from_cam[:3, 3], (v, u)


def _wxyz(rotation: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return np.array([w, x, y, z])


def _photo(run: RunData, name: str) -> np.ndarray | None:
    from PIL import Image

    if run.image_root is None or not (run.image_root / name).is_file():
        return None
    with Image.open(run.image_root / name) as im:
        im = im.convert("RGB")
        im.thumbnail((PHOTO_SIZE, PHOTO_SIZE))
        return np.asarray(im)


def add_cameras(server, run: RunData, size: float) -> None:
    for name, cam in run.cameras.items():
        world_from_cam = np.asarray(cam["world_from_cam"], dtype=np.float64)
        fy = np.asarray(cam["K"])[1][1]
        server.scene.add_camera_frustum(
            f"/cameras/{name}",
            fov=float(2 * np.arctan2(cam["height"] / 2, fy)),
            aspect=cam["width"] / cam["height"],
            scale=size,
            color=(216, 69, 59),
            image=_photo(run, name),
            wxyz=_wxyz(world_from_cam[:3, :3]),
            position=world_from_cam[:3, 3],
        )


def add_depth_toggles(server, run: RunData, point_size: float, max_points: int) -> None:
    """One checkbox per aligned view; its cloud is built the first time it is ticked."""
    rng = np.random.default_rng(0)
    with server.gui.add_folder("Aligned depth per view"):
        for name in run.view_names:
            if name not in run.cameras or "align" not in run.stages:
                continue
            box = server.gui.add_checkbox(name, False)
            box.on_update(_toggle(server, run, name, box, point_size, max_points, rng))


def _toggle(server, run, name, box, point_size, max_points, rng):
    handles: dict = {}

    def on_update(_event) -> None:
        if name not in handles:
            arrays = view_npz(run, "align", name)
            if "depth" not in arrays:
                log.warning("%s: no aligned depth (the view was not aligned)", name)
                return
            xyz, (v, u) = depth_points(arrays["depth"], run.cameras[name], max_points, rng)
            photo = _full_photo(run, name, arrays["depth"].shape)
            colors = photo[v, u] if photo is not None else (120, 200, 120)
            handles[name] = server.scene.add_point_cloud(
                f"/depth/{name}", xyz.astype(np.float32), colors, point_size=point_size
            )
        handles[name].visible = box.value

    return on_update


def _full_photo(run: RunData, name: str, shape: tuple[int, int]) -> np.ndarray | None:
    from PIL import Image

    if run.image_root is None or not (run.image_root / name).is_file():
        return None
    with Image.open(run.image_root / name) as im:
        return np.asarray(im.convert("RGB").resize((shape[1], shape[0])))


def start_viewer(out_dir: Path, host: str, port: int, max_points: int = 20_000):
    """A running viser server showing the run in `out_dir` (call .stop() to end it)."""
    import trimesh
    import viser

    from pipelines.report.scene3d import camera_up, decimate, read_points

    run = load_run(out_dir, "scene")
    if not run.cameras and run.mesh_path is None:
        raise InputError(
            "no run found (no cameras.json, no mesh)", path=out_dir, fix="pass a -o folder of scene"
        )
    server = viser.ViserServer(host=host, port=port, verbose=False)
    server.scene.set_up_direction(tuple(camera_up(run.cameras)))
    xyz = read_points(run.sparse_path)[0] if run.sparse_path else np.zeros((0, 3))
    lo, hi = np.percentile(xyz, [2, 98], axis=0) if len(xyz) else (np.zeros(3), np.ones(3))
    radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
    if run.mesh_path is not None and (mesh := decimate(run.mesh_path, VIEWER_MAX_FACES)):
        vertices, faces, colors = mesh
        colored = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False)
        server.scene.add_mesh_trimesh("/mesh", colored)
    if len(xyz):
        server.scene.add_point_cloud(
            "/sparse_points", xyz.astype(np.float32), read_points(run.sparse_path)[1],
            point_size=0.005 * radius,
        )  # fmt: skip
    _initial_camera(server, (lo + hi) / 2, radius, camera_up(run.cameras))
    add_cameras(server, run, 0.05 * radius)
    add_depth_toggles(server, run, 0.004 * radius, max_points)
    return server


def _initial_camera(server, target: np.ndarray, radius: float, up: np.ndarray) -> None:
    """Start above and to one side of the scene, looking at its centre (as report.html does)."""
    side = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    side = side - side.dot(up) * up
    side /= np.linalg.norm(side)
    server.initial_camera.position = tuple(target + 0.8 * radius * up + 1.3 * radius * side)
    server.initial_camera.look_at = tuple(target)
    server.initial_camera.up = tuple(up)


def run_view_command(args: argparse.Namespace) -> int:
    server = start_viewer(args.output, args.host, args.port, args.max_points)
    url = f"http://{args.host}:{server.get_port()}"
    print(f"lotus-recon view: {url}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (the CLI raises it): stop cleanly
        pass
    finally:
        server.stop()
    log.info("viewer stopped")
    return 0
