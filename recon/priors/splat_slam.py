"""Splat-SLAM: a TUM RGB-D sequence plus mono depth priors by frame index.

Layout (OUT is both the TUM input folder and Splat-SLAM's output/scene folder):
    OUT/...                               the TUM layout (recon/priors/tum.py)
    OUT/mono_priors/depths/{i:05d}.npy    float32 (H, W) z-depth in world units, 0 = unknown,
                                          i = index of the frame in the sequence (0-based)
    OUT/splat_slam.yaml                   config fragment: cam (H, W, fx, fy, cx, cy,
                                          H_out = H, W_out = W, no edge crop, png_depth_scale)
                                          and data (input_folder / output / scene -> OUT)

Checked against Splat-SLAM (`google-research/Splat-SLAM`, the official release of
eriksandstroem/Splat-SLAM): `src/utils/datasets.py` `load_mono_depth(idx, path)` loads
f"{path}/mono_priors/depths/{idx:05d}.npy" where path is f"{output}/{scene}" and idx the
dataset index (after stride); `src/mono_estimators.py` writes the same file as a (H_out, W_out)
float32 map at the tracker's resolution. We write full-resolution maps and set H_out = H,
W_out = W with zero edge crop so the shapes match; with another H_out/W_out, resize them.
Splat-SLAM fits its own scale and shift to these priors, and its tracker may regenerate the
folder with its omnidata model (predict_mono_depth) - keep a copy. Its TUM loader makes poses
relative to the first frame. One camera for all frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from recon.atomic import write_text
from recon.priors import tum
from recon.priors.common import (
    PriorsWritten,
    PriorView,
    SparsePoints,
    fmt_float,
    opencv_principal_point,
    single_camera,
    write_npy,
)


def config_yaml(views: Sequence[PriorView], out_dir: Path) -> str:
    cam = single_camera(views, "splat-slam")
    cx, cy = opencv_principal_point(cam)
    out_dir = Path(out_dir).resolve()
    return (
        "# Splat-SLAM config (run from the Splat-SLAM checkout: python run.py <this file>)\n"
        "inherit_from: ./configs/TUM_RGBD/tum.yaml\n"
        f"scene: {out_dir.name}\n"
        "data:\n"
        f"  dataset_root: {out_dir.parent}\n  input_folder: {out_dir.name}\n"
        f"  output: {out_dir.parent}\n"
        "cam:\n"
        f"  H: {cam.height}\n  W: {cam.width}\n  H_out: {cam.height}\n  W_out: {cam.width}\n"
        "  H_edge: 0\n  W_edge: 0\n"
        f"  fx: {fmt_float(cam.fx)}\n  fy: {fmt_float(cam.fy)}\n"
        f"  cx: {fmt_float(cx)}\n  cy: {fmt_float(cy)}\n"
        f"  png_depth_scale: {tum.DEPTH_SCALE:g}\n"
    )


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True,
          timestamps: Mapping[str, float] | None = None) -> PriorsWritten:  # fmt: skip
    """Write the Splat-SLAM layout (see the module docstring); `timestamps` as in tum.write."""
    out_dir = Path(out_dir)
    config = config_yaml(views, out_dir)  # raises before writing if cameras differ
    base = tum.write(
        views, out_dir, points, with_images=with_images, fmt="splat-slam", timestamps=timestamps
    )
    result = PriorsWritten("splat-slam", out_dir, len(views), base.files, [], base.warnings)
    for v in views:
        path = out_dir / "mono_priors" / "depths" / f"{v.index:05d}.npy"
        result.files.append(write_npy(path, v.depth.astype("float32")))
    write_text(out_dir / "splat_slam.yaml", config)
    result.files.append(out_dir / "splat_slam.yaml")
    result.notes.append(
        "splat-slam: python run.py <config inheriting splat_slam.yaml>; mono_priors/depths "
        "holds metric z-depth by frame index"
    )
    return result
