"""COLMAP model (cameras / images / points3D) plus the images it refers to.

Layout (OUT = the folder passed to the writer):
    OUT/images/{stem}.png             the frames' undistorted RGB images (EXIF already applied)
    OUT/sparse/0/cameras|images|points3D|rigs|frames.{bin,txt}   written by pycolmap, both forms

Conventions (COLMAP's own, https://colmap.github.io/format.html): PINHOLE cameras with
fx fy cx cy in pixels, principal point in COLMAP's pixel-centre convention (the top-left
pixel's centre is (0.5, 0.5), as in our records); images store cam_from_world (world -> camera,
OpenCV axes: x right, y down, z forward) as a quaternion (qw qx qy qz) and translation in
world units; image names are "{stem}.png" relative to OUT/images. Points3D are in world units
with tracks rebuilt from each frame's sparse observations (`Frame.sparse.point_ids`); pycolmap
drops points without any observation, so those are left out (counted in the notes).
Readers checked: pycolmap.Reconstruction(path) (the tests read it back this way), nerfstudio's
`nerfstudio/data/utils/colmap_parsing_utils.py` (read_cameras_binary / read_images_binary)
used by DN-Splatter's `dn_splatter/data/coolermap_dataparser.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.priors.common import PriorsWritten, PriorView, SparsePoints, write_png


def image_name(view: PriorView) -> str:
    """The image file name used by every layout that ships images: "{stem}.png"."""
    return f"{view.stem}.png"


def write_images(views: Sequence[PriorView], folder: Path) -> list[Path]:
    """Write each frame's RGB image as folder/{stem}.png (lossless)."""
    return [write_png(Path(folder) / image_name(v), v.frame.image) for v in views]


def build_reconstruction(views: Sequence[PriorView], points: SparsePoints | None):
    """pycolmap.Reconstruction with one PINHOLE camera per distinct (K, size), every view
    registered with its pose, and the points that have at least one observation."""
    import pycolmap

    rec = pycolmap.Reconstruction()
    camera_ids: dict[tuple, int] = {}
    for v in views:
        cam = v.frame.camera
        key = (cam.width, cam.height, *np.round(cam.K[[0, 1, 0, 1], [0, 1, 2, 2]], 9))
        if key not in camera_ids:
            camera_ids[key] = len(camera_ids) + 1
            params = [cam.fx, cam.fy, cam.cx, cam.cy]
            rec.add_camera_with_trivial_rig(
                pycolmap.Camera(
                    model="PINHOLE",
                    width=cam.width,
                    height=cam.height,
                    params=params,
                    camera_id=camera_ids[key],
                )  # fmt: skip
            )
        keypoints = np.zeros((0, 2))
        if v.frame.sparse is not None and v.frame.sparse.point_ids is not None:
            keypoints = np.asarray(v.frame.sparse.uv, dtype=np.float64).reshape(-1, 2)
        image = pycolmap.Image(
            name=image_name(v), keypoints=keypoints, camera_id=camera_ids[key], image_id=v.index + 1
        )
        T = v.frame.cam_from_world
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3].astype(np.float64))
        rec.add_image_with_trivial_frame(image, pose)
    dropped = _add_points(rec, views, points) if points is not None else 0
    return rec, dropped


def _add_points(rec, views: Sequence[PriorView], points: SparsePoints) -> int:
    """Add points with tracks from the views' observations; returns how many had none."""
    import pycolmap

    tracks: dict[int, list[tuple[int, int]]] = {}
    for v in views:
        sp = v.frame.sparse
        if sp is None or sp.point_ids is None:
            continue
        for k, pid in enumerate(np.asarray(sp.point_ids, dtype=np.int64)):
            tracks.setdefault(int(pid), []).append((v.index + 1, k))
    ids = points.ids if points.ids is not None else np.full(len(points.xyz), -1, np.int64)
    dropped = 0
    for k, pid in enumerate(ids):
        elements = tracks.get(int(pid), [])
        if not elements:
            dropped += 1
            continue
        track = pycolmap.Track()
        for image_id, point2d_idx in elements:
            track.add_element(image_id, point2d_idx)
        new_id = rec.add_point3D(
            np.asarray(points.xyz[k], np.float64), track, np.asarray(points.rgb[k], np.uint8)
        )
        if points.error is not None:
            rec.point3D(new_id).error = float(points.error[k])
    return dropped


def write_model(rec, folder: Path) -> list[Path]:
    """Write the model in binary and text form into `folder`, each file renamed into place
    atomically (pycolmap writes into a temp folder next to it first)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-model-", dir=folder))
    try:
        rec.write_binary(str(tmp))
        rec.write_text(str(tmp))
        out = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, folder / f.name)
            out.append(folder / f.name)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True) -> PriorsWritten:  # fmt: skip
    """COLMAP layout: OUT/images/*.png and OUT/sparse/0/*.{bin,txt}."""
    out_dir = Path(out_dir)
    result = PriorsWritten("colmap", out_dir, len(views))
    if with_images:
        result.files += write_images(views, out_dir / "images")
    rec, dropped = build_reconstruction(views, points)
    result.files += write_model(rec, out_dir / "sparse" / "0")
    result.notes.append(
        f"COLMAP model: {rec.num_cameras()} camera(s), {rec.num_images()} images, "
        f"{rec.num_points3D()} points; pinhole, COLMAP pixel centres, world units of the SfM"
    )
    if dropped:
        result.warnings.append(
            f"colmap: {dropped} points without observations in these views left out"
        )
    return result
