"""`lotus-recon image` with careless input and settings, through the real entry point."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import ROOM, assert_one_line_error, run_cli

PHOTO = ROOM / "images" / "0000.jpg"


@pytest.fixture()
def preds(tmp_path):
    """A predictions folder with affine disparity for `0000` and a panorama `pano`."""
    folder = tmp_path / "preds"
    folder.mkdir()
    ramp = np.linspace(1.0, 2.0, 240 * 320, dtype=np.float32).reshape(240, 320)
    np.savez(folder / "0000.npz", values=ramp, space="disparity")
    np.savez(folder / "pano.npz", values=np.tile(ramp[:, :40], (1, 8))[:, :320], space="disparity")
    return folder


def test_image_honours_mesh_settings(tmp_path, capfd, preds):
    out = tmp_path / "out"
    argv = ["-q", "image", PHOTO, "-o", out, "--predictions", preds]
    code, err = run_cli(
        [*argv, "--set", "mesh.formats=[ply]", "--set", "mesh.previews=false"], capfd
    )
    assert code == 0, err
    assert (out / "mesh.ply").is_file()
    assert not (out / "mesh.glb").exists() and not (out / "mesh.obj").exists()
    assert not (out / "previews").exists()


def test_image_refuses_keys_it_does_not_use(tmp_path, capfd, preds):
    argv = ["-q", "image", PHOTO, "-o", tmp_path / "out", "--predictions", preds]
    code, err = run_cli([*argv, "--set", "fusion.voxel_size=0.1"], capfd)
    assert code == 1
    assert_one_line_error(err, "unknown config key 'fusion'")


def test_image_given_a_folder(tmp_path, capfd, preds):
    code, err = run_cli(["-q", "image", ROOM / "images", "-o", tmp_path / "o"], capfd)
    assert code == 1
    assert_one_line_error(err, ROOM / "images", "is a folder", "scene")


def test_one_pixel_image(tmp_path, capfd, preds):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    argv = ["-q", "image", tmp_path / "dot.png", "-o", tmp_path / "out", "--predictions", preds]
    code, err = run_cli(argv, capfd)
    assert code == 1
    assert_one_line_error(err, "dot.png", "smaller than 64 px")


def test_panorama_without_intrinsics_is_warned_about(tmp_path, capfd, preds):
    Image.open(PHOTO).resize((1024, 128)).save(tmp_path / "pano.png")
    argv = ["image", tmp_path / "pano.png", "-o", tmp_path / "out", "--predictions", preds]
    code, err = run_cli([*argv, "--set", "mesh.formats=[ply]"], capfd)
    assert code == 0, err
    assert "8.0:1, likely a panorama" in err


def test_priors_formats_in_help_match_the_writers():
    from pipelines.cli import PRIORS_FORMATS
    from recon.priors import ALIASES, FORMATS

    assert sorted(PRIORS_FORMATS) == sorted(FORMATS + tuple(ALIASES))
