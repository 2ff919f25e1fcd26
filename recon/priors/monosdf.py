"""MonoSDF: monocular depth and normal cues with cameras.npz, in the scene's unit sphere.

Layout (OUT = the scan folder, `../data/<dataset>/scan<id>` in MonoSDF's configs):
    OUT/{i:06d}_rgb.png       the image (index order = camera index i)
    OUT/{i:06d}_depth.npy     float32 (H, W) z-depth in MonoSDF's normalised units
                              (world units / scale, scale from scale_mat); 0 = unknown
    OUT/{i:06d}_normal.npy    float32 (3, H, W) = (n + 1) / 2, n = unit normal in the OpenCV
                              camera frame (x right, y down, z forward), facing the camera
                              (z < 0 on a frontal wall); unknown -> 0.5 (n = 0)
    OUT/{i:06d}_mask.npy      float32 (H, W): 1 where depth is known (MonoSDF `use_mask`)
    OUT/cameras.npz           world_mat_{i} = K4 @ cam_from_world (4x4, K4 = K padded to 4x4,
                              principal point in MonoSDF's integer-pixel-centre convention),
                              scale_mat_{i} (4x4, the same for all i): normalised -> world,
                              x_world = s * x_norm + c, with the sphere of radius s around c
                              holding the cameras and 98 % of the depth points
    OUT/names.json            index -> frame name

Checked against MonoSDF's code: `code/datasets/scene_dataset.py` (SceneDatasetDN) globs sorted
"*_rgb.png", "*_depth.npy", "*_normal.npy" (and "*_mask.npy"); depth is reshaped to (-1, 1)
and normals read as (3, H, W), `normal * 2 - 1`. Cameras: P = world_mat @ scale_mat,
`rend_util.load_K_Rt_from_P` -> K and an OpenCV camera-to-world pose
(`preprocess/scannet_to_monosdf.py` writes world_mat = K @ inv(c2w) the same way). The
renderer rotates SDF-gradient normals into the camera frame with the pose's R^T
(`code/model/network.py`), so cue normals are OpenCV camera-frame and face outward (toward
the camera), as omnidata's do. MonoSDF's depth loss fits its own scale and shift per batch, so
depth units are not critical; we still write them in the normalised frame for consistency.
Pixel convention: SceneDatasetDN samples rays at uv = np.mgrid integer pixel indices (no
+0.5), i.e. pixel (i, j) is at (j, i): the OpenCV convention, so K holds cx - 0.5, cy - 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.atomic import write_json, write_npz
from recon.priors.common import (
    PriorsWritten,
    PriorView,
    SparsePoints,
    opencv_principal_point,
    progress,
    scene_bounds,
    write_npy,
    write_png,
)


def scale_matrix(views: Sequence[PriorView]) -> np.ndarray:
    """(4, 4) scale_mat mapping MonoSDF's normalised frame to the world: diag(s, s, s, 1) with
    translation c, so the scene sphere (centre c, radius s) becomes the unit sphere."""
    centre, radius = scene_bounds(views)
    S = np.eye(4)
    S[:3, :3] *= radius
    S[:3, 3] = centre
    return S


def world_mat(view: PriorView) -> np.ndarray:
    """(4, 4) K4 @ cam_from_world, MonoSDF's projection matrix for this view (integer pixel
    centres: the COLMAP-convention principal point minus 0.5)."""
    K4 = np.eye(4)
    K4[:3, :3] = view.frame.camera.K
    K4[:2, 2] = opencv_principal_point(view.frame.camera)
    return K4 @ view.frame.cam_from_world


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True) -> PriorsWritten:  # fmt: skip
    """Write the MonoSDF layout (see the module docstring)."""
    out_dir = Path(out_dir)
    result = PriorsWritten("monosdf", out_dir, len(views))
    S = scale_matrix(views)
    scale = float(S[0, 0])
    cameras: dict[str, np.ndarray] = {}
    for v in progress(views, "monosdf"):
        tag = f"{v.index:06d}"
        if with_images:
            result.files.append(write_png(out_dir / f"{tag}_rgb.png", v.frame.image))
        result.files.append(
            write_npy(out_dir / f"{tag}_depth.npy", (v.depth / scale).astype(np.float32))
        )
        normal = v.normal if v.normal is not None else np.zeros((*v.depth.shape, 3), np.float32)
        encoded = ((normal + 1.0) * 0.5).transpose(2, 0, 1).astype(np.float32)
        result.files.append(write_npy(out_dir / f"{tag}_normal.npy", encoded))
        result.files.append(write_npy(out_dir / f"{tag}_mask.npy", v.valid.astype(np.float32)))
        cameras[f"world_mat_{v.index}"] = world_mat(v)
        cameras[f"scale_mat_{v.index}"] = S
    write_npz(out_dir / "cameras.npz", **cameras)
    write_json(out_dir / "names.json", {f"{v.index:06d}": v.frame.name for v in views})
    result.files += [out_dir / "cameras.npz", out_dir / "names.json"]
    if any(v.normal is None for v in views):
        result.warnings.append("monosdf: views without normals got n = 0 (0.5 in the file)")
    result.notes.append(
        f"monosdf: scene sphere radius {scale:.4g} world units; img_res = [H, W] of the images; "
        "center_crop_type 'no_crop'; use_mask True to skip unknown depth"
    )
    return result
