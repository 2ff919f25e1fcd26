"""Intrinsics for a single photo: explicit K, --fov-deg, EXIF (35 mm, focal plane), default."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import ExifTags, Image

from recon.errors import InputError
from recon.intrinsics import (
    DEFAULT_FOV_DEG,
    FULL_FRAME_DIAGONAL_MM,
    choose_intrinsics,
    focal_from_fov,
    fov_from_focal,
    read_exif_camera,
)


def photo(path, size=(400, 300), orientation=None, **exif_tags):
    """Write a JPEG with the given EXIF (tags by ExifTags.Base name) and return its path."""
    img = Image.new("RGB", size, (90, 120, 150))
    exif = img.getexif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    for name, value in exif_tags.items():
        sub[getattr(ExifTags.Base, name).value] = value
    img.save(path, exif=exif)
    return path


def test_default_fov_when_no_exif(tmp_path):
    choice = choose_intrinsics(photo(tmp_path / "a.jpg"))
    assert choice.source == "default-fov"
    assert choice.fov_deg == DEFAULT_FOV_DEG
    cam = choice.camera
    assert (cam.width, cam.height) == (400, 300)
    assert cam.fx == pytest.approx(200 / math.tan(math.radians(30)))
    assert (cam.cx, cam.cy) == (200.0, 150.0)  # COLMAP pixel centres: the image centre
    assert "no usable EXIF" in choice.message


def test_exif_35mm_equivalent_uses_the_diagonal(tmp_path):
    choice = choose_intrinsics(photo(tmp_path / "a.jpg", FocalLengthIn35mmFilm=28, FocalLength=4.2))
    assert choice.source == "exif-35mm"
    expected = 28 * math.hypot(400, 300) / FULL_FRAME_DIAGONAL_MM
    assert choice.camera.fx == pytest.approx(expected)
    assert "35 mm" in choice.message
    # 3:2 images: the diagonal rule equals the long-side rule f35 * W / 36
    c32 = choose_intrinsics(photo(tmp_path / "b.jpg", size=(360, 240), FocalLengthIn35mmFilm=50))
    assert c32.camera.fx == pytest.approx(50 * 360 / 36)


def test_exif_focal_plane_resolution(tmp_path):
    # 4.0 mm lens, 2500 px/cm (unit 3 = cm) = 250 px/mm on the sensor
    path = photo(
        tmp_path / "a.jpg", FocalLength=4.0, FocalPlaneXResolution=2500.0,
        FocalPlaneYResolution=2500.0, FocalPlaneResolutionUnit=3,
    )  # fmt: skip
    choice = choose_intrinsics(path)
    assert choice.source == "exif-focal-plane"
    assert choice.camera.fx == pytest.approx(4.0 * 250.0)


def test_focal_length_needs_a_sensor_size(tmp_path):
    path = photo(tmp_path / "a.jpg", FocalLength=5.0)
    choice = choose_intrinsics(path)
    assert choice.source == "default-fov"
    assert any("sensor" in s for s in choice.skipped)
    with_sensor = choose_intrinsics(path, sensor_width_mm=6.4)
    assert with_sensor.source == "exif-sensor"
    assert with_sensor.camera.fx == pytest.approx(5.0 / 6.4 * 400)


def test_rotated_photo_swaps_width_and_height(tmp_path):
    path = photo(tmp_path / "a.jpg", size=(400, 300), orientation=6, FocalLengthIn35mmFilm=26)
    exif = read_exif_camera(path)
    assert (exif.width, exif.height, exif.orientation) == (300, 400, 6)
    cam = choose_intrinsics(path).camera
    assert (cam.width, cam.height) == (300, 400)
    assert (cam.cx, cam.cy) == (150.0, 200.0)
    # the focal length (pixels) does not depend on how the camera was held
    upright = choose_intrinsics(
        photo(tmp_path / "b.jpg", size=(400, 300), FocalLengthIn35mmFilm=26)
    )
    assert cam.fx == pytest.approx(upright.camera.fx)


def test_user_choices_win_over_exif(tmp_path):
    path = photo(tmp_path / "a.jpg", FocalLengthIn35mmFilm=28)
    fov = choose_intrinsics(path, fov_deg=90.0)
    assert fov.source == "fov"
    assert fov.camera.fx == pytest.approx(200.0)  # 90 deg across the 400 px long side
    K = np.array([[310.0, 0, 199.0], [0, 305.0, 151.0], [0, 0, 1]])
    explicit = choose_intrinsics(path, K=K, fov_deg=90.0)
    assert explicit.source == "explicit-K"
    assert np.array_equal(explicit.camera.K, K)
    with pytest.raises(InputError):
        choose_intrinsics(path, K=np.eye(2))


def test_implausible_exif_is_ignored(tmp_path):
    choice = choose_intrinsics(photo(tmp_path / "a.jpg", FocalLengthIn35mmFilm=1))
    assert choice.source == "default-fov"
    assert any("implausible" in s for s in choice.skipped)


def test_fov_round_trip_and_size_only():
    f = focal_from_fov(640, 480, 70.0)
    assert fov_from_focal(640, 480, f) == pytest.approx(70.0)
    choice = choose_intrinsics(None, width=640, height=480)
    assert choice.source == "default-fov"
    with pytest.raises(InputError):
        choose_intrinsics(None)


def test_unreadable_photo_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        choose_intrinsics(bad)
