"""TUM RGB-D sequence layout (read by MonoGS and Splat-SLAM's TUM loaders).

Layout (OUT = the sequence folder, MonoGS `Dataset.dataset_path`):
    OUT/rgb/{t}.png           the images, t = frame timestamp "%.6f" (a clip's own timestamps
                              in seconds; photos: frame i at i seconds)
    OUT/depth/{t}.png         uint16 z-depth x 5000 (value / 5000 = world units, "metres" when
                              the SfM is metric), 0 = unknown - the TUM RGB-D convention
    OUT/rgb.txt, depth.txt    "timestamp filename" per line after "#" comment lines
    OUT/groundtruth.txt       "timestamp tx ty tz qx qy qz qw" after 3 "#" lines: camera-to-world
                              (OpenCV camera axes, x right, y down, z forward), world units
    OUT/associations.txt      "t rgb/t.png t depth/t.png" (associate.py's output format)
    OUT/calibration.yaml      MonoGS `Dataset.Calibration` block (fx fy cx cy, width, height,
                              distorted False, depth_scale 5000)
    OUT/names.txt             "timestamp frame-name" to map back to the photos

Checked against MonoGS `utils/dataset.py` (TUMParser): rgb.txt / depth.txt parsed with
np.loadtxt (comments skipped), groundtruth.txt with skiprows=1 (we write comment lines, so no
pose is lost), associate_frames pairs timestamps within 0.08 s and keeps frames more than
1/32 s apart (1 s spacing keeps all), pose = quaternion_matrix(roll(q_xyzw, 1)) with t, inverted
to world-to-camera; depth = PIL image / depth_scale. Splat-SLAM's `src/utils/datasets.py`
(TUM_RGBD) reads the same files (scipy Rotation.from_quat(qx qy qz qw)) and png_depth_scale.
Principal point: TUM and OpenCV put pixel centres at integers, so calibration.yaml holds
cx - 0.5, cy - 0.5 of our COLMAP-convention K (stated choice; MonoGS does not document it).
One camera for all frames (these loaders take a single calibration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from recon.atomic import write_text
from recon.priors.common import (
    PriorsWritten,
    PriorView,
    SparsePoints,
    depth_to_uint16,
    fmt_float,
    opencv_principal_point,
    progress,
    quantisation_warning,
    quaternion_xyzw,
    single_camera,
    world_from_cam,
    write_png,
)

DEPTH_SCALE = 5000.0  # TUM RGB-D: 5000 units per metre
FRAME_SPACING_S = 1.0  # seconds between frames; > 0.16 s so association is unambiguous


def timestamp(view: PriorView, timestamps: Mapping[str, float] | None = None) -> str:
    """The frame's time (s) as TUM writes it: from `timestamps` (a clip's, by frame name)
    when given, else the view's index x FRAME_SPACING_S."""
    if timestamps is not None:
        return f"{timestamps[view.frame.name]:.6f}"
    return f"{view.index * FRAME_SPACING_S:.6f}"


def calibration_yaml(views: Sequence[PriorView], fmt: str) -> str:
    """MonoGS-style calibration block for the single camera of `views`."""
    cam = single_camera(views, fmt)
    cx, cy = opencv_principal_point(cam)
    return (
        "# MonoGS config: paste under Dataset: (type: 'tum', sensor_type: 'depth' or 'monocular')\n"
        "Calibration:\n"
        f"  fx: {fmt_float(cam.fx)}\n  fy: {fmt_float(cam.fy)}\n"
        f"  cx: {fmt_float(cx)}\n  cy: {fmt_float(cy)}\n"
        "  k1: 0.0\n  k2: 0.0\n  p1: 0.0\n  p2: 0.0\n  k3: 0.0\n"
        f"  width: {cam.width}\n  height: {cam.height}\n"
        f"  depth_scale: {DEPTH_SCALE:g}\n  distorted: False\n"
    )


def pose_line(view: PriorView, t: str | None = None) -> str:
    T = world_from_cam(view)
    q = quaternion_xyzw(T[:3, :3])
    values = [*T[:3, 3], *q]
    return (t or timestamp(view)) + " " + " ".join(fmt_float(x) for x in values)


def write(views: Sequence[PriorView], out_dir: Path, points: SparsePoints | None = None,
          with_images: bool = True, fmt: str = "tum",
          timestamps: Mapping[str, float] | None = None) -> PriorsWritten:  # fmt: skip
    """Write the TUM RGB-D layout (see the module docstring). `timestamps`: seconds by frame
    name (a video's own; they must be > 1/32 s apart for MonoGS's association)."""
    out_dir = Path(out_dir)
    calib = calibration_yaml(views, fmt)  # raises before writing anything if cameras differ
    result = PriorsWritten(fmt, out_dir, len(views))
    rgb, depth, gt, assoc, names = [], [], [], [], []
    for v in progress(views, fmt):
        t = timestamp(v, timestamps)
        if with_images:
            result.files.append(write_png(out_dir / "rgb" / f"{t}.png", v.frame.image))
        depth16, _ = depth_to_uint16(v.depth, DEPTH_SCALE)
        result.files.append(write_png(out_dir / "depth" / f"{t}.png", depth16))
        rgb.append(f"{t} rgb/{t}.png")
        depth.append(f"{t} depth/{t}.png")
        gt.append(pose_line(v, t))
        assoc.append(f"{t} rgb/{t}.png {t} depth/{t}.png")
        names.append(f"{t} {v.frame.name}")
    header = "# written by lotus-recon priors\n# file: '{}'\n# timestamp {}\n"
    files = {
        "rgb.txt": header.format("rgb.txt", "filename") + "\n".join(rgb),
        "depth.txt": header.format("depth.txt", "filename") + "\n".join(depth),
        "groundtruth.txt": header.format("groundtruth.txt", "tx ty tz qx qy qz qw") + "\n".join(gt),
        "associations.txt": "\n".join(assoc),
        "names.txt": "\n".join(names),
        "calibration.yaml": calib,
    }
    for name, text in files.items():
        write_text(out_dir / name, text + ("" if text.endswith("\n") else "\n"))
        result.files.append(out_dir / name)
    result.warnings += quantisation_warning(views, DEPTH_SCALE, fmt)
    result.notes.append(
        f"{fmt}: depth PNG scale {DEPTH_SCALE:g} per world unit; poses camera-to-world "
        "(OpenCV axes); calibration in calibration.yaml (integer pixel-centre cx, cy)"
    )
    return result
