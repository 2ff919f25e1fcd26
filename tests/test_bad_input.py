"""What real photo folders and users do, through the real `lotus-recon` entry point.

Each case either finishes with the problem reported (a skipped file with its reason, a view
left out) or stops with exactly one stderr line that names the file and the fix, and never a
traceback. Runs use the committed sample scene with simulated predictions and coarse fusion.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import trimesh
from PIL import Image

from tests.cli_helpers import (
    FAST,
    ROOM,
    assert_one_line_error,
    cameras,
    copy_photos,
    report,
    room_names,
    run_cli,
    skipped_reasons,
    stage_dirs,
)
from tests.cli_helpers import (
    scene_argv as _scene,
)

BASE_VIEWS = room_names(6)


def _size(name: str) -> tuple[int, int]:
    return Image.open(ROOM / "images" / name).size


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(ROOM / "images" / name).convert("RGB"))


# --- a messy photo folder: every file kind at once, one SfM run, one test per kind ------------


def _messy_folder(folder: Path) -> None:
    folder.mkdir()
    alpha = np.full(_rgb("0000.jpg").shape[:2], 255, np.uint8)
    alpha[:16, :16] = 0  # a transparent corner
    Image.fromarray(np.dstack([_rgb("0000.jpg"), alpha])).save(folder / "0000.png")
    Image.fromarray(_rgb("0001.jpg")).convert("L").save(folder / "0001.jpg", quality=95)
    Image.fromarray(_rgb("0002.jpg")).convert("CMYK").save(folder / "0002.jpg", quality=95)
    gray16 = np.asarray(Image.fromarray(_rgb("0003.jpg")).convert("L"), np.uint16) * 257
    Image.fromarray(gray16).save(folder / "0003.png")  # 16-bit grayscale PNG
    stored = Image.fromarray(_rgb("0004.jpg")).transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[0x0112] = 6  # displayed rotated 90 deg clockwise: upright again
    stored.save(folder / "0004.jpg", exif=exif, quality=95)
    huge = Image.fromarray(_rgb("0005.jpg")).resize((8000, 6000), Image.Resampling.BILINEAR)
    huge.save(folder / "0005.jpg", quality=90)
    Image.fromarray(_rgb("0006.jpg")).save(folder / "0006.tif")
    Image.fromarray(_rgb("0007.jpg")).save(folder / "0007.jpg", format="PNG")  # misnamed
    shutil.copy2(ROOM / "images" / "0008.jpg", folder / "0008.jpg")
    shutil.copy2(ROOM / "images" / "0008.jpg", folder / "0008 copy.jpg")  # duplicate
    Image.fromarray(_rgb("0010.jpg")).save(folder / "0001.png")  # same stem as 0001.jpg
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(2000))
    data = (ROOM / "images" / "0009.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("shot on a cloudy day\n")
    (folder / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (folder / ".DS_Store").write_bytes(bytes(64))
    (folder / "._0008.jpg").write_bytes(bytes(64))  # macOS resource fork
    Image.fromarray(_rgb("0011.jpg")[:30, :40]).save(folder / "tiny.jpg")


@pytest.fixture(scope="module")
def messy(sample):
    """One run over the messy folder, in its own process (its stderr is all it printed)."""
    folder = sample["root"] / "messy"
    _messy_folder(folder)
    out = sample["root"] / "messy_out"
    argv = ["-q", "scene", folder, "-o", out, "--predictions", sample["preds"], *FAST]
    proc = _cli_process([*argv, "--set", "images.max_size=1000"])
    return {"out": out, "code": proc.returncode, "err": proc.stderr, "folder": folder}


def _cli_process(argv: list) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipelines.cli", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOM.parents[1])


def test_messy_folder_finishes_quietly_with_a_mesh(messy):
    assert messy["code"] == 0, messy["err"]
    assert (messy["out"] / "mesh.ply").stat().st_size > 0
    assert messy["err"] == ""  # -q: nothing but errors, and COLMAP's own log is muted too


@pytest.mark.parametrize(
    "name,words",
    [
        ("corrupt.jpg", "cannot decode image"),
        ("truncated.jpg", "cannot decode image"),
        ("notes.txt", "unsupported file type"),
        ("IMG_0001.heic", "cannot decode image"),  # a HEIC header with no picture
        ("tiny.jpg", "smaller than 64 px"),
        ("0008 copy.jpg", "duplicate of 0008.jpg"),
        ("0001.png", "same name as 0001.jpg"),
    ],
)
def test_unusable_file_is_skipped_with_its_reason(messy, name, words):
    reasons = skipped_reasons(messy["out"])
    assert words in reasons[name]
    assert "fix:" in reasons[name]
    log = (messy["out"] / "log.txt").read_text()
    assert f"skipped {name}: " in log


def test_hidden_files_are_ignored_silently(messy):
    reasons = skipped_reasons(messy["out"])
    assert not any(n.startswith(".") or "/." in n for n in reasons)
    assert ".DS_Store" not in (messy["out"] / "log.txt").read_text()


@pytest.mark.parametrize(
    "name,kind",
    [("0000.png", "RGBA"), ("0001.jpg", "grayscale"), ("0002.jpg", "CMYK"), ("0003.png", "16-bit")],
)
def test_image_mode_is_converted_and_the_view_is_used(messy, name, kind):
    cams = cameras(messy["out"])
    assert name in cams, f"{kind} view not registered"
    assert report(messy["out"])["alignment"][name]["status"] == "ok"
    copy = stage_dirs(messy["out"], "images")[0] / "images" / name
    assert Image.open(copy).mode == "RGB"
    if kind == "RGBA":  # transparent pixels become mid-grey, not black or noise
        assert np.all(np.abs(np.asarray(Image.open(copy))[:16, :16].astype(int) - 128) <= 1)


def _copy_size(messy, name: str) -> tuple[int, int]:
    return Image.open(stage_dirs(messy["out"], "images")[0] / "images" / name).size


def _close(size: tuple[int, int], expected: tuple[int, int]) -> bool:
    """Undistortion trims or pads a pixel or two; orientation and scale must hold."""
    return all(abs(a - b) <= 0.02 * b for a, b in zip(size, expected))


def test_exif_rotation_is_respected_by_sfm_prediction_and_export(messy):
    assert _copy_size(messy, "0004.jpg") == _size("0004.jpg")  # upright pixels for SfM
    cam = cameras(messy["out"])["0004.jpg"]
    assert _close((cam["width"], cam["height"]), _size("0004.jpg"))  # exported upright
    align = report(messy["out"])["alignment"]
    # The prediction (made on the upright photo) fits as well as on the other views: with
    # the orientation ignored it would be stretched onto a portrait frame and fail to fit.
    others = [a["residual"] for n, a in align.items() if a["status"] == "ok" and n != "0004.jpg"]
    assert align["0004.jpg"]["status"] == "ok"
    assert align["0004.jpg"]["residual"] < 2 * np.median(others)


def test_huge_image_is_downscaled_with_a_warning_and_gets_its_own_camera(messy):
    assert _copy_size(messy, "0005.jpg") == (1000, 750)
    cams = cameras(messy["out"])
    assert _close((cams["0005.jpg"]["width"], cams["0005.jpg"]["height"]), (1000, 750))
    assert _close((cams["0008.jpg"]["width"], cams["0008.jpg"]["height"]), _size("0008.jpg"))
    assert cams["0005.jpg"]["K"][0][0] > 2 * cams["0008.jpg"]["K"][0][0]  # its own focal (px)
    assert "0005.jpg: downscaled by 0.125 to 1000x750" in (messy["out"] / "log.txt").read_text()
    assert report(messy["out"])["alignment"]["0005.jpg"]["status"] == "ok"


def test_tiff_prediction_is_found_by_the_photo_name(messy):
    assert report(messy["out"])["alignment"]["0006.tif.png"]["status"] == "ok"


def test_png_named_jpg_is_reencoded_as_jpeg(messy):
    copy = stage_dirs(messy["out"], "images")[0] / "images" / "0007.jpg"
    assert Image.open(copy).format == "JPEG"
    assert "0007.jpg" in cameras(messy["out"])


def test_huge_jpeg_decode_memory_is_bounded(tmp_path):
    """An 8000x6000 JPEG (144 MB as RGB) is normalised with far less memory than that."""
    src = tmp_path / "huge.jpg"
    Image.fromarray(_rgb("0000.jpg")).resize((8000, 6000)).save(src, quality=90)
    code = (
        "import resource, sys; from pathlib import Path\n"
        "from recon.images import normalize_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"size, f = normalize_image(Path(r'{src}'), Path(r'{tmp_path}') / 'o.jpg', 1000)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(size[0], size[1], (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    w, h, grown_mb = map(int, out.stdout.split())
    assert (w, h) == (1000, 750)
    assert grown_mb < 8000 * 6000 * 3 / 2**20 / 2  # under half of one full-size decode


# --- folders that stop the run: one stderr line naming the file and the fix ----------------


def test_empty_folder(tmp_path, capfd):
    (tmp_path / "photos").mkdir()
    code, err = run_cli(["-q", "scene", tmp_path / "photos", "-o", tmp_path / "out"], capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "photos", "no usable images")


def test_missing_photo_folder(tmp_path, capfd):
    code, err = run_cli(["-q", "scene", tmp_path / "nope", "-o", tmp_path / "out"], capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "nope", "not found")


def test_folder_without_a_usable_image(sample, tmp_path, capfd):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (photos / "readme.md").write_text("x")
    code, err = run_cli(_scene(sample, tmp_path / "out", photos=photos), capfd)
    assert code == 1
    assert_one_line_error(err, photos, "no usable images")
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "skipped broken.jpg" in log and "skipped readme.md" in log


def test_textureless_folder_cannot_be_registered(tmp_path, capfd):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(np.full((240, 320, 3), 90 + 10 * i, np.uint8)).save(photos / f"{i}.png")
    code, err = run_cli(
        ["-q", "scene", photos, "-o", tmp_path / "out"] + _file_pred(tmp_path), capfd
    )
    assert code == 1
    assert_one_line_error(err, photos, "registered 0 of 4")
    assert not any((d / "done.json").exists() for d in stage_dirs(tmp_path / "out", "sfm"))


def _file_pred(tmp_path: Path) -> list:
    """A predictions folder that passes the up-front check (the run stops before using it)."""
    folder = tmp_path / "preds"
    folder.mkdir(exist_ok=True)
    np.savez(folder / "unused.npz", values=np.ones((4, 4), np.float32), space="depth")
    return ["--predictions", folder]


def test_two_unrelated_sets_keep_the_larger_and_report_the_rest(sample, tmp_path, capfd):
    from sample_scenes.generator import generate_scene

    other = generate_scene(tmp_path / "object", "object", 1, 4, 320, 240)
    photos = copy_photos(tmp_path / "photos", room_names(5))
    for path in sorted((Path(other) / "images").iterdir()):
        shutil.copy2(path, photos / f"object_{path.name}")
    argv = ["-q", "scene", photos, "-o", tmp_path / "out", "--predictions", sample["preds"], *FAST]
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    sfm = report(tmp_path / "out")["sfm"]
    assert sorted(cameras(tmp_path / "out")) == room_names(5)
    assert sfm["unregistered"] == [f"object_{i:04d}.jpg" for i in range(4)]
    assert (
        "not registered (left out): object_0000.jpg" in (tmp_path / "out" / "log.txt").read_text()
    )


def _strip_observations(model: Path, out: Path, name: str, keep: int) -> Path:
    """A copy of `model` where view `name` observes only `keep` of its 3D points."""
    rec = pycolmap.Reconstruction(model)
    image = next(im for im in rec.images.values() if im.name == name)
    observed = [i for i, p in enumerate(image.points2D) if p.has_point3D()]
    for idx in observed[keep:]:
        rec.delete_observation(image.image_id, idx)
    out.mkdir(parents=True)
    rec.write(out)
    return out


@pytest.mark.parametrize("fallback,status", [("skip", "too_few_points"), ("borrow", "borrowed")])
def test_view_with_too_few_points_is_reported_and_handled(
    sample, tmp_path, capfd, fallback, status
):
    model = _strip_observations(sample["model"], tmp_path / "model", "0002.jpg", keep=5)
    argv = _scene(sample, tmp_path / "out", "--set", f"align.fallback={fallback}")
    argv[argv.index(sample["model"])] = model
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    result = report(tmp_path / "out")
    assert result["alignment"]["0002.jpg"]["status"] == status
    assert result["alignment"]["0001.jpg"]["status"] == "ok"
    assert result["fusion"]["num_views"] == (6 if fallback == "borrow" else 5)
    assert f"0002.jpg: alignment {status}" in (tmp_path / "out" / "log.txt").read_text()


def _edited_predictions(sample, folder: Path, name: str, edit) -> Path:
    shutil.copytree(sample["preds"], folder)
    with np.load(folder / name) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(folder / name, **arrays)
    return folder


def test_nan_and_inf_in_a_prediction_are_unknown_pixels(sample, tmp_path, capfd):
    def poison(arrays):
        arrays["values"][:40] = np.nan
        arrays["values"][-40:, :50] = np.inf
        arrays["values"][100:110, 100:110] = -np.inf
        if "normal" in arrays:
            arrays["normal"][50:60] = np.nan

    preds = _edited_predictions(sample, tmp_path / "preds", "0001.npz", poison)
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=preds), capfd)
    assert code == 0, err
    assert report(tmp_path / "out")["alignment"]["0001.jpg"]["status"] == "ok"
    mesh = trimesh.load(tmp_path / "out" / "mesh.ply", process=False)
    assert len(mesh.faces) > 0 and np.isfinite(mesh.vertices).all()


def test_all_nan_prediction_skips_that_view(sample, tmp_path, capfd):
    def blank(arrays):
        arrays["values"][:] = np.nan

    preds = _edited_predictions(sample, tmp_path / "preds", "0003.npz", blank)
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=preds), capfd)
    assert code == 0, err
    result = report(tmp_path / "out")
    assert result["alignment"]["0003.jpg"]["status"] != "ok"
    assert result["fusion"]["num_views"] == 5
    predict = json.loads((stage_dirs(tmp_path / "out", "predict")[0] / "done.json").read_text())
    assert predict["empty_predictions"] == ["0003.jpg"]


def test_missing_prediction_file(sample, tmp_path, capfd):
    shutil.copytree(sample["preds"], tmp_path / "preds")
    (tmp_path / "preds" / "0003.npz").unlink()
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=tmp_path / "preds"), capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "preds" / "0003.npz", "no prediction for image 0003.jpg")


def test_corrupt_prediction_file(sample, tmp_path, capfd):
    shutil.copytree(sample["preds"], tmp_path / "preds")
    (tmp_path / "preds" / "0004.npz").write_bytes(b"PK\x03\x04 not really a zip")
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=tmp_path / "preds"), capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "preds" / "0004.npz", "unreadable prediction file")


def test_missing_predictions_folder_fails_before_any_work(sample, tmp_path, capfd):
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=tmp_path / "nope"), capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "nope", "predictions folder not found")
    assert stage_dirs(tmp_path / "out", "images") == []


def test_missing_checkpoint_fails_before_sfm(sample, tmp_path, capfd):
    missing = tmp_path / "models" / "lotus-depth-g-v2-1-disparity"
    argv = ["-q", "scene", sample["photos"], "-o", tmp_path / "out", "--lotus-depth", missing]
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, missing, "--lotus-depth")
    assert stage_dirs(tmp_path / "out", "sfm") == []


def test_normal_checkpoint_given_as_the_depth_model(sample, tmp_path, capfd):
    from lotus_core.testing import build_tiny_checkpoint

    normal = build_tiny_checkpoint(tmp_path / "lotus-normal-g-v1-1", "g", "normal", None)
    argv = ["-q", "scene", sample["photos"], "-o", tmp_path / "out", "--lotus-depth", normal]
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, "lotus-normal-g-v1-1", "normal checkpoint", "--lotus-depth")
    assert stage_dirs(tmp_path / "out", "sfm") == []


@pytest.mark.parametrize(
    "override,words",
    [
        ("fusion.voxel_sise=0.1", "did you mean 'voxel_size'"),
        ("fusion.voxel_size=-1", "fusion.voxel_size must be > 0"),
        ("fusion.voxel_size=.nan", "fusion.voxel_size must be > 0"),
        ("sfm.mapper=colmap", "sfm.mapper must be one of"),
        ("images.max_size=big", "'images.max_size' must be int"),
        ("align.min_points=0", "align.min_points must be >= 2"),
        ("fusion", "has no '='"),
    ],
)
def test_invalid_config_value(sample, tmp_path, capfd, override, words):
    code, err = run_cli(_scene(sample, tmp_path / "out", "--set", override), capfd)
    assert code == 1
    assert_one_line_error(err, words)
    assert stage_dirs(tmp_path / "out", "images") == []


def test_config_file_missing_or_malformed(sample, tmp_path, capfd):
    code, err = run_cli(_scene(sample, tmp_path / "out", "--config", tmp_path / "c.yaml"), capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "c.yaml", "not found")
    (tmp_path / "c.yaml").write_text("fusion: {voxel_size: [\n")
    code, err = run_cli(_scene(sample, tmp_path / "out", "--config", tmp_path / "c.yaml"), capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "c.yaml", "invalid YAML")


def test_colmap_folder_without_a_model(sample, tmp_path, capfd):
    (tmp_path / "model").mkdir()
    argv = _scene(sample, tmp_path / "out")
    argv[argv.index(sample["model"])] = tmp_path / "model"
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, tmp_path / "model", "no COLMAP model")


def test_output_folder_that_is_not_writable(sample, tmp_path, capfd):
    (tmp_path / "file").write_text("a file, not a folder")
    code, err = run_cli(_scene(sample, tmp_path / "file" / "out"), capfd)
    assert code == 3  # like a full disk: the output side, not the input, needs the fix
    assert_one_line_error(err, tmp_path / "file" / "out", "not writable")


def test_disk_full_mid_run_leaves_nothing_half_written_and_resumes(
    sample, tmp_path, capfd, monkeypatch
):
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:  # the disk fills up at the third prediction file
        if "/predict-" in os.readlink(f"/proc/self/fd/{fd}"):
            calls.append(fd)
            if len(calls) >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, err = run_cli(_scene(sample, out), capfd)
    assert code == 3
    predict = stage_dirs(out, "predict")[0]
    assert_one_line_error(err, predict / "0002.npz", "disk full")
    assert sorted(p.name for p in predict.iterdir()) == ["0000.npz", "0001.npz"]  # no temp file
    for name in ("0000.npz", "0001.npz"):
        np.load(predict / name)["values"]  # complete files
    monkeypatch.setattr(os, "fsync", real_fsync)
    code, err = run_cli(_scene(sample, out)[1:], capfd)  # without -q: the log shows the resume
    assert code == 0, err
    assert "predict: 2 of 6 views already done" in err


def test_traceback_only_with_verbose(tmp_path):
    quiet = _cli_process(["scene", tmp_path / "nope", "-o", tmp_path / "out"])
    assert quiet.returncode == 1
    assert_one_line_error(quiet.stderr, tmp_path / "nope")
    verbose = _cli_process(["-v", "scene", tmp_path / "nope", "-o", tmp_path / "out"])
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
