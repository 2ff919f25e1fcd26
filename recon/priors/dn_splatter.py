"""DN-Splatter: aligned monocular depth and pretrained-normal maps next to a COLMAP model.

Layout (OUT = the `--data` folder for `ns-train dn-splatter ... coolermap` or
`... normal-nerfstudio`):
    OUT/images/{stem}.png
    OUT/colmap/sparse/0/*.{bin,txt}          COLMAP model (see recon/priors/colmap.py)
    OUT/mono_depth/{stem}_aligned.npy        float32 (H, W) z-depth in SfM world units; 0 = unknown
    OUT/normals_from_pretrain/{stem}.png     uint8 RGB = (n + 1) / 2 * 255, n = camera-frame
                                             normal, OpenGL axes (x right, y up, z toward the
                                             viewer), facing the camera
    OUT/transforms.json, OUT/depths/*.png    the nerfstudio layout (recon/priors/nerfstudio.py)

Checked against DN-Splatter's code:
  `dn_splatter/data/coolermap_dataparser.py`: depth files are natsorted
  glob("mono_depth/*_aligned.npy"), its depth_unit_scale_factor is 1 (so .npy values are world
  units), the model is read from colmap/sparse/0 and images from images/; normals from
  natsorted glob("normals_from_pretrain/*.png") with normal_format "opengl" by default.
  `dn_splatter/scripts/align_depth.py` writes `mono_depth/{stem}_aligned.npy` (the name we use).
  `dn_splatter/data/dn_dataset.py` (get_normal_image_from_path): PNG / 255, and for "opengl"
  in the camera frame n_cv = (2 v - 1) @ diag(1, -1, -1) - so the PNG holds (n_gl + 1) / 2.
Both folders are sorted like the images because all three share the stem; avoid stems that are
prefixes of each other with digits after them (natsort could then order "_aligned" apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recon.priors import colmap, nerfstudio
from recon.priors.common import PriorsWritten, PriorView, SparsePoints, write_npy


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True) -> PriorsWritten:  # fmt: skip
    """Write the DN-Splatter layout (see the module docstring)."""
    out_dir = Path(out_dir)
    base = nerfstudio.write(views, out_dir, points, with_images=with_images)
    result = PriorsWritten("dn-splatter", out_dir, len(views), base.files, [], base.warnings)
    model = colmap.build_reconstruction(views, points)
    result.files += colmap.write_model(model[0], out_dir / "colmap" / "sparse" / "0")
    for v in views:
        path = out_dir / "mono_depth" / f"{v.stem}_aligned.npy"
        result.files.append(write_npy(path, v.depth.astype("float32")))
    if any(v.normal is None for v in views):
        result.warnings.append("dn-splatter: some views have no normals; none were written")
    result.notes.append(
        "dn-splatter: ns-train dn-splatter ... coolermap --data OUT (mono depth, metric: "
        "depth_unit_scale_factor 1) or normal-nerfstudio --data OUT --load-normals True"
    )
    return result
