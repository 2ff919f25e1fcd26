"""nerfstudio data folder: transforms.json with per-frame depth (and normal maps).

Layout (OUT = the `--data` folder given to `ns-train ... nerfstudio-data`):
    OUT/transforms.json
    OUT/images/{stem}.png
    OUT/depths/{stem}.png                 uint16, millimetres of world units: value / 1000 =
                                          z-depth in SfM units; 0 = unknown
    OUT/normals_from_pretrain/{stem}.png  uint8 RGB = (n + 1) / 2 * 255, n = unit normal in the
                                          camera frame with OpenGL axes (x right, y up, z toward
                                          the viewer), facing the camera (z > 0 for a frontal wall)
    OUT/sparse_pc.ply                     SfM points (world frame) when points are given

transforms.json (read by `nerfstudio/data/dataparsers/nerfstudio_dataparser.py`):
    "frames": [{"file_path", "depth_file_path", "transform_matrix", "fl_x", "fl_y", "cx", "cy",
                "w", "h"}], per-frame intrinsics in pixels, "camera_model": "OPENCV" (no
    distortion keys: the images are undistorted).
    transform_matrix: 4x4 camera-to-world with OpenGL camera axes (x right, y up, z backward)
    = world_from_cam(OpenCV) @ diag(1, -1, -1, 1); the world frame is the SfM world, unchanged.
    cx, cy: nerfstudio casts rays through pixel index + 0.5 (`get_image_coords(pixel_offset=0.5)`),
    the same convention as COLMAP, so cx, cy are copied unchanged.
    "applied_transform": identity (3x4). Written on purpose: DN-Splatter's normal-nerfstudio
    parser (`dn_splatter/data/normal_nerfstudio.py`) otherwise assumes the axis swap of
    nerfstudio's old COLMAP converter when a colmap/sparse/0 folder exists next to it.
    Depth units: `depth_unit_scale_factor` defaults to 1e-3 (millimetres -> metres) in
    NerfstudioDataParserConfig, and `get_depth_image_from_path` reads the PNG with
    cv2.IMREAD_ANYDEPTH and multiplies by it, so depth values are world units x 1000
    (`nerfstudio/data/datasets/depth_dataset.py` also multiplies by the dataparser's pose
    scale, so depth follows any auto-scaling of the poses).
    The normal maps are the layout DN-Splatter's normal-nerfstudio parser loads
    (natsorted OUT/normals_from_pretrain/*.png, stems matching the images,
    normal_format "opengl", its default); nerfstudio itself ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.atomic import write_json, write_with
from recon.priors.colmap import image_name, write_images
from recon.priors.common import (
    OPENGL_FROM_OPENCV,
    PriorsWritten,
    PriorView,
    SparsePoints,
    depth_to_uint16,
    encode_normal_rgb,
    progress,
    quantisation_warning,
    world_from_cam,
    write_png,
)

DEPTH_UNITS_PER_WORLD = 1000.0  # millimetres when the world unit is the metre


def c2w_opengl(view: PriorView) -> np.ndarray:
    """(4, 4) camera-to-world with OpenGL camera axes (nerfstudio's transform_matrix)."""
    T = world_from_cam(view)
    T[:3, :3] = T[:3, :3] @ OPENGL_FROM_OPENCV
    return T


def normal_png_opengl(normal: np.ndarray) -> np.ndarray:
    """OpenCV camera-frame normals -> uint8 RGB of the OpenGL camera-frame normal."""
    return encode_normal_rgb(normal @ OPENGL_FROM_OPENCV)


def frame_entry(view: PriorView, with_normal: bool) -> dict:
    cam = view.frame.camera
    entry = {
        "file_path": f"images/{image_name(view)}",
        "depth_file_path": f"depths/{view.stem}.png",
        "transform_matrix": c2w_opengl(view).tolist(),
        "fl_x": cam.fx,
        "fl_y": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "w": cam.width,
        "h": cam.height,
    }
    if with_normal:
        entry["normal_file_path"] = f"normals_from_pretrain/{view.stem}.png"
    return entry


def write_point_cloud(points: SparsePoints, path: Path) -> Path:
    """Binary PLY of the SfM points (x y z float, red green blue uchar), world frame."""
    import trimesh

    cloud = trimesh.PointCloud(np.asarray(points.xyz, np.float64), colors=points.rgb)
    data = cloud.export(file_type="ply")
    write_with(path, lambda tmp: Path(tmp).write_bytes(data))
    return Path(path)


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True) -> PriorsWritten:  # fmt: skip
    """Write the nerfstudio layout (see the module docstring)."""
    out_dir = Path(out_dir)
    result = PriorsWritten("nerfstudio", out_dir, len(views))
    if with_images:
        result.files += write_images(views, out_dir / "images")
    clipped = 0  # pixels too far for uint16 millimetres
    with_normal = all(v.normal is not None for v in views)
    for v in progress(views, "nerfstudio"):
        depth16, over = depth_to_uint16(v.depth, DEPTH_UNITS_PER_WORLD)
        clipped += over
        result.files.append(write_png(out_dir / "depths" / f"{v.stem}.png", depth16))
        if with_normal:
            path = out_dir / "normals_from_pretrain" / f"{v.stem}.png"
            result.files.append(write_png(path, normal_png_opengl(v.normal)))
    meta = {
        "camera_model": "OPENCV",
        "applied_transform": np.eye(4)[:3].tolist(),
        "frames": [frame_entry(v, with_normal) for v in views],
    }
    if points is not None and len(points.xyz):
        result.files.append(write_point_cloud(points, out_dir / "sparse_pc.ply"))
        meta["ply_file_path"] = "sparse_pc.ply"
    write_json(out_dir / "transforms.json", meta)
    result.files.append(out_dir / "transforms.json")
    result.warnings += quantisation_warning(views, DEPTH_UNITS_PER_WORLD, "nerfstudio")
    if clipped:
        result.warnings.append(
            f"nerfstudio: {clipped} depth pixels did not fit in uint16 (set to 0)"
        )
    result.notes.append(
        "nerfstudio: ns-train <method> --data OUT with the default depth_unit_scale_factor 1e-3; "
        "the dataparser rescales depth together with the poses"
    )
    return result
