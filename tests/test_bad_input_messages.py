"""Messages that blame the right thing, and real photo sets' surprises (few views aligned,
cameras with different focal lengths), through the real `lotus-recon` entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, copy_photos, report, room_names, run_cli
from tests.cli_helpers import scene_argv as _scene

# --- 9: messages that blame the right thing --------------------------------------------------


def _rewrite_all(sample, folder: Path, edit) -> Path:
    shutil.copytree(sample["preds"], folder)
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        edit(arrays)
        np.savez(path, **arrays)
    return folder


def _set(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key])

    return edit


@pytest.mark.parametrize(
    "kind,edit,words",
    [
        ("nan", _set("values", lambda v: np.full_like(v, np.nan)), "fit none"),
        ("zero", _set("values", np.zeros_like), "fit none"),
        ("constant", _set("values", lambda v: np.full_like(v, 0.7)), "fit none"),
        ("negated", _set("values", lambda v: -v), "anti-correlated"),
        ("labelled depth", _set("space", lambda s: np.array("depth")), "prediction"),
    ],
)
def test_unalignable_predictions_blame_the_predictions(sample, tmp_path, capfd, kind, edit, words):
    preds = _rewrite_all(sample, tmp_path / "preds", edit)
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=preds), capfd)
    assert code == 1, kind
    line = assert_one_line_error(err, "no view could be aligned", words)
    assert "views need >= align.min_points" not in line


def test_zero_normals_blame_the_normals(sample, tmp_path, capfd):
    preds = _rewrite_all(sample, tmp_path / "preds", _set("normal", np.zeros_like))
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=preds), capfd)
    assert code == 1
    line = assert_one_line_error(err, "normals are zero or invalid", "fusion.weighting=uniform")
    assert "depth range and poses" not in line


def test_colmap_model_naming_photos_not_in_the_folder(sample, tmp_path, capfd):
    photos = copy_photos(tmp_path / "photos", room_names(6, start=6))  # other names
    code, err = run_cli(_scene(sample, tmp_path / "out", photos=photos), capfd)
    assert code == 1
    line = assert_one_line_error(err, sample["model"], "not in", "0000.jpg")
    assert "JPEG" not in line


def test_colmap_model_without_images_names_the_model(sample, tmp_path, capfd):
    import pycolmap

    rec = pycolmap.Reconstruction(sample["model"])
    for frame_id in list(rec.frames):
        rec.deregister_frame(frame_id)
    (tmp_path / "model").mkdir()
    rec.write(tmp_path / "model")
    argv = _scene(sample, tmp_path / "out")
    argv[argv.index(sample["model"])] = tmp_path / "model"
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "model", "no registered images")


# --- 15: real photo sets ---------------------------------------------------------------------


class _Cam:
    def __init__(self, focal: float, size: int):
        self.focal, self.width, self.height = focal, size, size * 3 // 4

    def mean_focal_length(self) -> float:
        return self.focal


class _Image:
    def __init__(self, name: str, camera_id: int):
        self.name, self.camera_id = name, camera_id


class _Model:
    """The parts of a pycolmap.Reconstruction the focal check reads: 4 per-image cameras."""

    def __init__(self, focals: list[float]):
        self.cameras = {i: _Cam(f, 1000) for i, f in enumerate(focals)}
        self.images = {i: _Image(f"{i}.jpg", i) for i in range(len(focals))}

    def reg_image_ids(self) -> list[int]:
        return list(self.images)


def test_different_cameras_may_have_different_focal_lengths():
    from recon.sfm import _focal_spread

    model = _Model([500.0, 520.0, 4000.0, 4100.0])  # a phone and a telephoto lens
    devices = {"0.jpg": "phone", "1.jpg": "phone", "2.jpg": "tele", "3.jpg": "tele"}
    assert _focal_spread(model, devices) is None
    assert _focal_spread(model, None) is not None  # one device: a 8x spread is a fault
    same = {name: "phone" for name in devices}
    assert _focal_spread(model, same) == pytest.approx((0.5, 4.1))


def test_mesh_from_a_minority_of_views_is_flagged(sample, tmp_path, capfd):
    preds = tmp_path / "preds"
    shutil.copytree(sample["preds"], preds)
    for stem in ("0000", "0001", "0002", "0003"):  # anti-correlated with the SfM depth
        with np.load(preds / f"{stem}.npz") as data:
            arrays = {k: data[k] for k in data.files}
        arrays["values"] = -arrays["values"]
        np.savez(preds / f"{stem}.npz", **arrays)
    argv = _scene(sample, tmp_path / "out", preds=preds)
    argv.remove("-q")  # the warning is for the console
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    (warning,) = report(tmp_path / "out")["warnings"]
    assert "only 2 of 6 views aligned" in warning and "negative depth scale" in warning
    assert f"WARNING {warning}" in err
