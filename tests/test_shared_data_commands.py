"""The `image` command on a real photo from ../shared/data (skipped when absent).

No Lotus weights run here, so predictions are the datasets' own depth put through a known
affine map in disparity space (what an ideal affine-invariant model would output): what is
checked is everything around the model on a real photo with real intrinsics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NYU = DATA / "single_image_gt" / "nyu_metric3d"


def _disparity_file(depth_m: np.ndarray, path: Path) -> None:
    """An affine-invariant disparity prediction file (README format) from metric depth."""
    known = depth_m > 0
    values = np.where(known, 2.0 / np.where(known, depth_m, 1.0) + 0.3, np.nan)
    np.savez(path, values=values.astype(np.float32), space=np.array("disparity"))


@pytest.mark.skipif(not NYU.is_dir(), reason="shared data not available")
def test_image_command_on_nyu_photo(tmp_path):
    """Without normals the disparity shift is unknown (taken as 0): the output depth must be
    exactly c / values, with c set by the one metric measurement (distance at the centre)."""
    entry = json.loads((NYU / "test_annotations.json").read_text())["files"][0]
    rgb = NYU / "rgb" / Path(entry["rgb"]).name
    depth = np.asarray(Image.open(NYU / "depth" / Path(entry["depth"]).name)) / 1000.0
    preds = tmp_path / "pred"
    preds.mkdir()
    _disparity_file(depth, preds / f"{rgb.stem}.npz")
    values = np.load(preds / f"{rgb.stem}.npz")["values"]
    fx, fy, cx, cy = entry["cam_in"]
    out = tmp_path / "out"
    args = ["image", str(rgb), "-o", str(out), "--predictions", str(preds)]
    args += ["--K", f"{fx},{fy},{cx},{cy}", "--metric-center-distance", "2.5"]
    assert main(args) == 0
    summary = json.loads((out / "single_image.json").read_text())
    assert summary["intrinsics"]["source"] == "explicit-K"
    assert summary["shift"]["source"] == "none"
    pred = np.load(out / "depth.npz")["depth"]
    assert pred.shape == depth.shape  # full resolution kept for a 640x480 photo
    both = (pred > 0) & np.isfinite(values)
    assert both.mean() > 0.5
    c = pred[both] * values[both]  # depth = c / disparity, one c for the whole image
    assert np.ptp(c) / np.median(c) < 1e-3
    h, w = pred.shape
    assert np.median(pred[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2]) == pytest.approx(
        2.5, rel=0.02
    )
    for name in ("mesh.ply", "mesh.glb", "mesh.obj"):
        assert (out / name).stat().st_size > 0
