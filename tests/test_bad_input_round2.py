"""Hostile and careless use, second round: signals after pycolmap is loaded, strict JSON,
file modes, settings that would exhaust memory or disk, odd folder entries, resumes.

Through the real `lotus-recon` entry point on the committed sample scene (shared `sample`
fixture: six photos, simulated predictions, one clean run's COLMAP model).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import resolve
from pipelines.scene_config import SceneConfig
from recon.atomic import write_bytes, write_json
from recon.images import list_images
from tests.cli_helpers import (
    FAST,
    ROOM,
    assert_one_line_error,
    copy_photos,
    report,
    room_names,
    run_cli,
    stage_dirs,
)
from tests.cli_helpers import scene_argv as _scene

REPO = ROOM.parents[1]
TINY_DEPTH = REPO / "models" / "lotus-depth-tiny"


def _strict_load(path: Path) -> object:
    """json.loads that refuses NaN / Infinity (not JSON, whatever Python writes)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: bare {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- 1: SIGTERM once pycolmap is loaded -------------------------------------------------------


def test_sigterm_after_pycolmap_is_loaded_unwinds_with_one_line(sample, tmp_path):
    """The real CLI in a fresh process (nothing imported before it): SIGTERM arrives once the
    scene pipeline, and with it pycolmap, is loaded; the run unwinds like Ctrl-C."""
    out = tmp_path / "out"
    argv = ["scene", sample["photos"], "-o", out, "--predictions", sample["preds"], *FAST]
    cmd = [sys.executable, "-m", "pipelines.cli", *map(str, argv)]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # logged after pipelines.scene (and pycolmap) is imported
        lines.append(line)
        if "precomputed predictions from" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM, "".join(lines) + rest
    assert "SIGTERM received" not in rest and "***" not in rest  # no glog stack dump
    assert rest.strip().splitlines()[-1] == (
        "ERROR interrupted; rerun the same command to resume where it stopped"
    )
    assert not (out / "work" / "lock").exists() or _lock_free(out)


def _lock_free(out: Path) -> bool:
    from pipelines.workspace import Workspace

    Workspace(out).lock()  # raises when a process still holds it
    return True


# --- 5, 6: strict JSON, file modes ------------------------------------------------------------


def test_json_outputs_are_strict_with_unknown_values_as_null(tmp_path):
    write_json(tmp_path / "a.json", {"nan": float("nan"), "inf": np.float32("inf"), "x": [1.5]})
    assert _strict_load(tmp_path / "a.json") == {"nan": None, "inf": None, "x": [1.5]}


def test_report_of_a_run_with_a_failed_view_is_strict_json(sample, tmp_path, capfd):
    preds = tmp_path / "preds"
    shutil.copytree(sample["preds"], preds)
    with np.load(preds / "0003.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["values"][:] = np.nan  # this view fails alignment: its residual is unknown
    np.savez(preds / "0003.npz", **arrays)
    code, err = run_cli(_scene(sample, tmp_path / "out", preds=preds), capfd)
    assert code == 0, err
    result = _strict_load(tmp_path / "out" / "report.json")
    assert result["alignment"]["0003.jpg"]["status"] != "ok"
    assert result["alignment"]["0003.jpg"]["residual"] is None
    for path in (tmp_path / "out" / "work").rglob("*.json"):
        _strict_load(path)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == mode


def test_outputs_of_a_run_are_readable_by_others(sample):
    out = sample["clean"]  # written under pytest's umask
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    for name in ("mesh.ply", "mesh.glb", "cameras.json", "report.json", "config.yaml"):
        assert (out / name).stat().st_mode & 0o777 == expected, name
    for path in (out / "work").rglob("*.npz"):
        assert path.stat().st_mode & 0o777 == expected, path


# --- 8: numbers as YAML 1.1 reads them ------------------------------------------------------


@pytest.mark.parametrize("text,value", [("1e-6", 1e-6), ("5E-3", 5e-3), ("2e1", 20.0)])
def test_exponent_without_a_dot_is_a_number_for_float_fields(text, value):
    config = resolve(SceneConfig, "default", None, [f"fusion.voxel_size={text}"])
    assert config.fusion.voxel_size == value


def test_non_number_string_for_a_float_field_is_still_refused():
    with pytest.raises(Exception, match="fusion.voxel_size"):
        resolve(SceneConfig, "default", None, ["fusion.voxel_size=1e-6x"])


# --- 3, 9: settings that would exhaust memory, or mesh nothing ------------------------------


@pytest.mark.parametrize("voxel", ["1e-6", "0.005"])
def test_tiny_voxel_is_refused_naming_the_voxel_that_fits(sample, tmp_path, capfd, voxel):
    from dataclasses import replace

    from pipelines.stage_sfm import load_sparse_scene
    from pipelines.workspace import Stage
    from recon.fusion import FusionParams
    from recon.fusion_memory import check_fusion_memory

    argv = _scene(sample, tmp_path / "out", "--set", f"fusion.voxel_size={voxel}")
    code, err = run_cli([*argv, "--set", "fusion.memory_budget_gb=1"], capfd)
    assert code == 1
    line = assert_one_line_error(err, "memory budget", "fusion.voxel_size to")
    fits = float(line.split("fusion.voxel_size to ")[1].split()[0])
    assert fits > float(voxel)
    # The suggested voxel passes the same check on the same scene.
    sfm = stage_dirs(sample["clean"], "sfm")[0]
    scene = load_sparse_scene(Stage(sfm.parent, "sfm", sfm.name.split("-", 1)[1]))
    params = replace(FusionParams(memory_budget_gb=1.0), voxel_size=fits)
    assert check_fusion_memory(scene.points_xyz, params).bytes <= 2**30


def test_fusion_estimate_is_close_to_open3d_block_count(sample):
    """The estimate against the blocks Open3D allocates for the clean run at two voxel sizes:
    within a factor 3, and never below it (a refusal must not come too late)."""
    from pipelines.stage_fuse import _source
    from pipelines.stage_sfm import load_sparse_scene
    from pipelines.view_files import aligned_views, view_path
    from pipelines.workspace import Stage
    from recon.consistency import fusion_views
    from recon.fusion import FusionParams, fuse_views, scene_fusion_params
    from recon.fusion_memory import estimate_fusion_memory

    clean = sample["clean"] / "work"
    sfm, align = stage_dirs(sample["clean"], "sfm")[0], stage_dirs(sample["clean"], "align")[0]
    scene = load_sparse_scene(Stage(clean, "sfm", sfm.name.split("-", 1)[1]))
    names = [n for n in scene.names if view_path(align, n).is_file()]
    depths = [np.load(view_path(align, n))["depth"] for n in names]
    cams = [scene.cameras[n] for n in names]
    for voxel in (0.8, 0.4):
        params = scene_fusion_params(cams, scene.points_xyz, depths, FusionParams(voxel_size=voxel))
        views = fusion_views(_source(scene, aligned_views(align, names)), params)
        volume = fuse_views(views, params)
        blocks = volume.grid.hashmap().size()
        est = estimate_fusion_memory(scene.points_xyz, voxel, 8.0, 8)
        assert blocks <= est.blocks < 3 * blocks, (voxel, blocks, est.blocks)


def test_voxel_larger_than_the_scene_blames_the_voxel(sample, tmp_path, capfd):
    code, err = run_cli(_scene(sample, tmp_path / "out", "--set", "fusion.voxel_size=1e6"), capfd)
    assert code == 1
    line = assert_one_line_error(err, "fusion.voxel_size=1e+06", "larger than")
    assert "weight threshold" not in line


def test_huge_processing_resolution_is_refused_before_any_work(tmp_path, capfd, sample):
    argv = ["-q", "scene", sample["photos"], "-o", tmp_path / "out", "--lotus-depth", TINY_DEPTH]
    argv += ["--set", "predictor.normal_model=null", "--set", "predictor.processing_res=100000"]
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, "predictor.processing_res=100000", "memory budget")
    assert stage_dirs(tmp_path / "out", "images") == []


# --- 10: model, cache and device before the first stage -------------------------------------


def test_typo_in_a_local_model_path_is_not_taken_as_a_hub_id(tmp_path, capfd, monkeypatch):
    photos = copy_photos(tmp_path / "photos", room_names(3))
    shutil.copytree(TINY_DEPTH, tmp_path / "models" / "lotus-depth-tiny")
    monkeypatch.chdir(tmp_path)
    argv = ["-q", "scene", photos, "-o", tmp_path / "out", "--lotus-depth"]
    code, err = run_cli([*argv, "models/lotus-depth-tinyy"], capfd)
    assert code == 1
    assert_one_line_error(err, "models/lotus-depth-tinyy", "not found")
    assert stage_dirs(tmp_path / "out", "images") == []


def test_default_checkpoints_offline_fail_before_any_work(sample, tmp_path, capfd, monkeypatch):
    from lotus_core.checkpoints import resolve_checkpoint
    from lotus_core.errors import LotusError
    from pipelines.scene_config import DEFAULT_DEPTH_MODEL

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never a multi-GB download from a test
    try:
        resolve_checkpoint(DEFAULT_DEPTH_MODEL)
        pytest.skip("the default checkpoint is in this machine's Hugging Face cache")
    except LotusError:
        pass
    code, err = run_cli(["-q", "scene", sample["photos"], "-o", tmp_path / "out"], capfd)
    assert code == 1
    assert_one_line_error(err, DEFAULT_DEPTH_MODEL, "HF_HUB_OFFLINE", "--lotus-depth")
    assert stage_dirs(tmp_path / "out", "images") == []


@pytest.mark.parametrize("device,words", [("cuda", "CUDA is not available"), ("tpu", "tpu")])
def test_unusable_device_fails_before_any_work(sample, tmp_path, capfd, device, words):
    pytest.importorskip("torch")
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = ["-q", "scene", sample["photos"], "-o", tmp_path / "out", "--lotus-depth", TINY_DEPTH]
    code, err = run_cli([*argv, "--set", "predictor.normal_model=null", "--device", device], capfd)
    assert code == 1
    assert_one_line_error(err, words)
    assert stage_dirs(tmp_path / "out", "images") == []


def test_fusion_device_without_cuda_is_one_line_before_any_work(sample, tmp_path, capfd):
    import open3d as o3d

    if o3d.core.cuda.is_available():
        pytest.skip("this Open3D build has CUDA")
    code, err = run_cli(_scene(sample, tmp_path / "out", "--set", "fusion.device=CUDA:0"), capfd)
    assert code == 1
    line = assert_one_line_error(err, "fusion.device", "CPU:0")
    assert "\x1b[" not in line
    assert stage_dirs(tmp_path / "out", "images") == []


# --- 2: disk full during SfM ----------------------------------------------------------------


def test_disk_too_small_for_sfm_is_exit_3_before_colmap_starts(
    sample, tmp_path, capfd, monkeypatch
):
    import pipelines.stage_sfm as stage_sfm

    real = shutil.disk_usage

    def two_megabytes(path):  # what a 2 MB tmpfs as -o leaves after the image copies
        return real(path)._replace(free=1_500_000)

    monkeypatch.setattr(stage_sfm.shutil, "disk_usage", two_megabytes)
    argv = ["-q", "scene", sample["photos"], "-o", tmp_path / "out"]
    code, err = run_cli([*argv, "--predictions", sample["preds"], *FAST], capfd)
    assert code == 3
    assert_one_line_error(err, "disk full", "free space")
    assert not list((tmp_path / "out" / "work").rglob("database.db"))


def test_sfm_database_estimate_matches_the_clean_run(sample):
    from pipelines.stage_images import load_image_set
    from pipelines.stage_sfm import database_bytes
    from pipelines.workspace import Stage
    from recon.sfm import SfMParams

    images = stage_dirs(sample["clean"], "images")[0]
    image_set = load_image_set(Stage(images.parent, "images", images.name.split("-", 1)[1]))
    measured = (stage_dirs(sample["clean"], "sfm")[0] / "colmap" / "database.db").stat().st_size
    estimate = database_bytes(image_set, SfMParams())
    assert measured / 2 < estimate < measured * 2, (estimate, measured)


# --- 4, 11: what the intake reads -------------------------------------------------------------


def test_output_folder_inside_the_photo_folder_is_not_read_as_photos(sample, tmp_path, capfd):
    photos = copy_photos(tmp_path / "photos", room_names(6))
    out = photos / "out"
    argv = ["-q", "scene", photos, "-o", out, "--predictions", sample["preds"]]
    argv += ["--colmap", sample["model"], *FAST]
    for _ in range(2):  # the rerun finds the first run's copies inside the photo folder
        code, err = run_cli(argv, capfd)
        assert code == 0, err
        result = report(out)
        assert result["images"]["used"] == 6
        assert not [s for s in result["images"]["skipped"] if s["name"].startswith("out/")]
    assert len(stage_dirs(out, "images")) == 1  # the rerun reused the first run's images


def test_symlinked_folder_is_followed_and_odd_entries_are_listed(tmp_path):
    root = copy_photos(tmp_path / "photos", room_names(2))
    elsewhere = copy_photos(tmp_path / "elsewhere", room_names(2, start=2))
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    os.mkfifo(root / "pipe.jpg")
    (root / "folder.jpg").mkdir()
    names, skipped = list_images(root)
    assert names == ["0000.jpg", "0001.jpg", "linked/0002.jpg", "linked/0003.jpg"]
    reasons = {s.name: s.reason for s in skipped}
    assert "broken symbolic link" in reasons["dangling.jpg"]
    assert "pipe" in reasons["pipe.jpg"]
    assert "folder named like an image" in reasons["folder.jpg"]
    assert "already read" in reasons["loop"]
    assert all("fix:" in r for r in reasons.values())


# --- 12: resume keeps the alignment ----------------------------------------------------------


def test_rerun_reusing_the_align_stage_reports_the_same_alignment(sample, tmp_path, capfd):
    out = tmp_path / "out"
    argv = _scene(sample, out, "--set", "align.refine.validate=false")  # corrections kept
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    first = _strict_load(out / "report.json")
    assert all(a["smooth_correction"] for a in first["alignment"].values())
    shutil.rmtree(stage_dirs(out, "fuse")[0])  # the rerun loads the alignments from disk
    code, err = run_cli(argv, capfd)
    assert code == 0, err
    again = _strict_load(out / "report.json")
    assert again["alignment"] == first["alignment"]


# --- 14 and exit codes -----------------------------------------------------------------------


def test_empty_output_is_a_usage_error(sample, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        run_cli(["scene", sample["photos"], "-o", "", "--predictions", sample["preds"]], capfd)
    assert stop.value.code == 2
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_verbosity_flags_after_the_subcommand(tmp_path, capfd):
    code, err = run_cli(["scene", tmp_path / "nope", "-o", tmp_path / "out", "-q"], capfd)
    assert code == 1
    assert_one_line_error(err, "not found")


@pytest.mark.parametrize(
    "content,words",
    [(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text"), (None, "is a folder")],
)
def test_config_that_is_binary_or_a_folder(sample, tmp_path, capfd, content, words):
    path = tmp_path / "config.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    code, err = run_cli(_scene(sample, tmp_path / "out", "--config", path), capfd)
    assert code == 1
    assert_one_line_error(err, path, words)


def test_missing_open3d_system_library_names_the_install_fix(sample, tmp_path):
    code = (
        "import sys; sys.modules['open3d'] = None\n"  # import open3d now fails, as without libusb
        "from pipelines.cli import main\n"
        f"sys.exit(main({[str(a) for a in _scene(sample, tmp_path / 'out')]!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc.stderr, "open3d", "libusb-1.0-0")
