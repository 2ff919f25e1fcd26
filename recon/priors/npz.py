"""Plain per-view npz files: everything we know about a view, in our own conventions.

Layout:
    OUT/views/{stem}.npz, one per view, np.load(path) keys:
        depth               (H, W) float32  z-depth, SfM world units, 0 = unknown
        normal_camera       (H, W, 3) float32  unit normal, OpenCV camera frame (x right,
                                               y down, z forward), facing the camera; 0 = unknown
        normal_world        (H, W, 3) float32  the same normal in the world frame (R^T n)
        confidence          (H, W) float32  in [0, 1] (1 where no confidence was given)
        K                   (3, 3) float64  pixels, COLMAP pixel centres ((0.5, 0.5) = centre
                                            of the top-left pixel)
        cam_from_world      (4, 4) float64  world -> OpenCV camera
        width, height       int
        name                str  the frame name (path relative to the image root)
    OUT/index.json          stem -> frame name, and the conventions above
Missing normals are stored as zeros (and `has_normal` False).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.atomic import write_json, write_npz
from recon.priors.common import PriorsWritten, PriorView, SparsePoints, progress

CONVENTIONS = {
    "depth": "z-depth, SfM world units, 0 = unknown",
    "normal_camera": "unit, OpenCV camera frame (x right, y down, z forward), facing the camera",
    "normal_world": "unit, world frame",
    "K": "pixels, COLMAP pixel centres",
    "cam_from_world": "4x4 world -> OpenCV camera",
}


def view_arrays(view: PriorView) -> dict[str, np.ndarray]:
    h, w = view.depth.shape
    zeros = np.zeros((h, w, 3), np.float32)
    conf = view.confidence if view.confidence is not None else np.ones((h, w), np.float32)
    return {
        "depth": view.depth.astype(np.float32),
        "normal_camera": view.normal if view.normal is not None else zeros,
        "normal_world": view.world_normal if view.normal is not None else zeros,
        "has_normal": np.array(view.normal is not None),
        "confidence": conf.astype(np.float32),
        "K": view.frame.camera.K.astype(np.float64),
        "cam_from_world": view.frame.cam_from_world.astype(np.float64),
        "width": np.array(w),
        "height": np.array(h),
        "name": np.array(view.frame.name),
    }


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = False) -> PriorsWritten:  # fmt: skip
    """Write one npz per view plus index.json (images are not copied)."""
    out_dir = Path(out_dir)
    result = PriorsWritten("npz", out_dir, len(views))
    for v in progress(views, "npz"):
        path = out_dir / "views" / f"{v.stem}.npz"
        write_npz(path, **view_arrays(v))
        result.files.append(path)
    index = {"views": {v.stem: v.frame.name for v in views}, "conventions": CONVENTIONS}
    write_json(out_dir / "index.json", index)
    result.files.append(out_dir / "index.json")
    result.notes.append("npz: OUT/views/<stem>.npz per view (keys in index.json)")
    return result
