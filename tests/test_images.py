import numpy as np
import pytest
from PIL import Image

from recon.errors import InputError
from recon.images import (
    check_duplicates,
    list_images,
    load_rgb,
    normalize_image,
    normalized_name,
)


def _textured(h=80, w=120, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_listing_ignores_hidden_and_reports_other_files(tmp_path):
    Image.fromarray(_textured()).save(tmp_path / "a.jpg")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "sub").mkdir()
    Image.fromarray(_textured()).save(tmp_path / "sub" / "c.png")
    names, skipped = list_images(tmp_path)
    assert names == ["a.jpg", "sub/c.png"]
    assert [s.name for s in skipped] == ["notes.txt"]
    assert "unsupported file type" in skipped[0].reason


def test_exif_orientation_is_applied(tmp_path):
    pixels = _textured(40 * 2, 60 * 2)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 deg clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = load_rgb(tmp_path / "r.jpg")
    assert out.shape == (120, 80, 3)  # width and height swapped


@pytest.mark.parametrize(
    "mode,make",
    [
        ("RGBA", lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 128, np.uint8)]))),
        ("L", lambda a: Image.fromarray(a[..., 0])),
        ("CMYK", lambda a: Image.fromarray(a).convert("CMYK")),
        ("I;16", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257)),
        ("P", lambda a: Image.fromarray(a).convert("P")),
    ],
)
def test_any_mode_becomes_rgb8(tmp_path, mode, make):
    img = make(_textured())
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out = load_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (80, 120, 3)
    if mode == "I;16":  # 16-bit range mapped to 8-bit, not clipped to white
        assert 50 < out.mean() < 200


def test_corrupt_and_truncated_files_are_one_line_errors(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    buf = tmp_path / "good.jpg"
    Image.fromarray(_textured()).save(buf, quality=95)
    (tmp_path / "trunc.jpg").write_bytes(buf.read_bytes()[: len(buf.read_bytes()) // 2])
    for name in ("bad.jpg", "trunc.jpg"):
        with pytest.raises(InputError) as err:
            load_rgb(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value) and "fix:" in str(err.value)


def test_normalize_downscales_huge_and_rejects_tiny(tmp_path):
    Image.fromarray(_textured(300, 400)).save(tmp_path / "big.png")
    size, factor = normalize_image(tmp_path / "big.png", tmp_path / "out" / "big.png", max_size=200)
    assert size == (200, 150) and factor == pytest.approx(0.5)
    assert Image.open(tmp_path / "out" / "big.png").size == (200, 150)
    Image.fromarray(_textured(30, 40)).save(tmp_path / "tiny.png")
    with pytest.raises(InputError, match="smaller than"):
        normalize_image(tmp_path / "tiny.png", tmp_path / "out" / "tiny.png", max_size=200)


def test_plain_jpeg_is_copied_byte_for_byte_and_tiff_becomes_png(tmp_path):
    Image.fromarray(_textured()).save(tmp_path / "a.jpg", quality=90)
    normalize_image(tmp_path / "a.jpg", tmp_path / "o" / "a.jpg", max_size=2000)
    assert (tmp_path / "o" / "a.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()
    assert normalized_name("x/b.tiff") == "x/b.tiff.png"


def test_duplicates_are_skipped(tmp_path):
    Image.fromarray(_textured()).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    kept, skipped = check_duplicates(tmp_path, ["a.png", "b.png"])
    assert kept == ["a.png"] and "duplicate of a.png" in skipped[0].reason
