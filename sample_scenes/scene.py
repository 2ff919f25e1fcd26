"""Loading a generated scene folder and re-rendering its ground truth.

Ground-truth depth and normals are not stored: `render_ground_truth` ray-casts `mesh.ply`
(the same float32 vertices the photos were rendered from) with the stored K and pose, so it
reproduces the geometry of the photos exactly.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
from PIL import Image

from recon.errors import InputError
from recon.records import Camera, Frame
from sample_scenes.render import depth_and_normal, make_raycaster

SCENE_FILES = ("cameras.json", "mesh.ply", "scene.json")


@dataclass(frozen=True)
class SceneGroundTruth:
    """A generated scene: cameras, exact poses and the ground-truth mesh."""

    root: Path  # the scene folder
    names: list[str]  # image names relative to root / "images", e.g. "0000.jpg", in order
    camera: Camera  # shared pinhole camera (K in pixels, COLMAP pixel centres)
    cam_from_world: dict[str, np.ndarray]  # name -> (4, 4) float64, world -> OpenCV camera
    mesh_path: Path  # ground-truth surface, world frame, metres
    extent: float  # bounding-box diagonal of the mesh, metres
    kind: str  # "room" or "object"
    seed: int

    @property
    def image_dir(self) -> Path:
        return self.root / "images"


def load_scene(root: str | Path) -> SceneGroundTruth:
    """Read a scene folder written by `generate_scene`. Raises InputError when incomplete."""
    root = Path(root)
    for name in SCENE_FILES:
        if not (root / name).is_file():
            raise InputError(
                f"not a generated scene (no {name})",
                path=root,
                fix="generate one with `python -m sample_scenes generate -o DIR`",
            )
    try:
        cams = json.loads((root / "cameras.json").read_text())
        meta = json.loads((root / "scene.json").read_text())
        K = np.asarray(cams["K"], dtype=np.float64).reshape(3, 3)
        camera = Camera(K=K, width=int(cams["width"]), height=int(cams["height"]))
        poses = {
            f["name"]: np.asarray(f["cam_from_world"], dtype=np.float64).reshape(4, 4)
            for f in cams["frames"]
        }
        names = [f["name"] for f in cams["frames"]]
        extent, kind, seed = float(meta["extent"]), str(meta["kind"]), int(meta["seed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"malformed scene files ({type(exc).__name__}: {exc})", path=root, fix="regenerate it"
        ) from exc
    return SceneGroundTruth(
        root=root,
        names=names,
        camera=camera,
        cam_from_world=poses,
        mesh_path=root / "mesh.ply",
        extent=extent,
        kind=kind,
        seed=seed,
    )


def render_ground_truth(scene: SceneGroundTruth, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of view `name` at pixel centres.

    Returns depth (H, W) float32 z-depth in metres (0 where the ray hits nothing) and normal
    (H, W, 3) float32 unit normals in the OpenCV camera frame, oriented towards the camera
    (dot(normal, ray) < 0), 0 where nothing is hit.
    """
    if name not in scene.cam_from_world:
        raise KeyError(f"no view named {name!r} in {scene.root}")
    raycaster = _raycaster(str(scene.mesh_path), *_stamp(scene.mesh_path))
    cam = scene.camera
    depth, normal, _ = depth_and_normal(
        raycaster, cam.K, scene.cam_from_world[name], cam.width, cam.height
    )
    return depth, normal


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(V, 3) float32 vertices, (T, 3) int32 triangles and (V, 3) uint8 colours (or None)."""
    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) == 0:
        raise InputError("mesh has no triangles", path=path, fix="regenerate the scene")
    colors = None
    if mesh.has_vertex_colors():
        colors = np.round(np.asarray(mesh.vertex_colors) * 255.0).astype(np.uint8)
    verts = np.asarray(mesh.vertices).astype(np.float32)
    return verts, np.asarray(mesh.triangles).astype(np.int32), colors


def scene_frames(scene: SceneGroundTruth) -> list[Frame]:
    """Frames with images loaded (H, W, 3 uint8 RGB) and ground-truth poses; no sparse points."""
    frames = []
    for name in scene.names:
        with Image.open(scene.image_dir / name) as im:
            image = np.asarray(im.convert("RGB"))
        frames.append(
            Frame(
                name=name,
                image=image,
                camera=scene.camera,
                cam_from_world=scene.cam_from_world[name].copy(),
            )
        )
    return frames


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _raycaster(path: str, mtime_ns: int, size: int) -> o3d.t.geometry.RaycastingScene:
    """Ray-casting scene of a mesh file, cached per (path, modification time, size)."""
    verts, tris, _ = load_mesh(path)
    return make_raycaster(verts, tris)
