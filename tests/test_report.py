"""report.html: written by `scene`, self-contained, right geometry, never fails the run; and in a
real browser: no console error, no request, the 3D canvas draws, one gallery row per view."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from tests.browser import BROWSER_SCHEMES, chromium, console_errors, element_pixels, requested_urls
from tests.cli_helpers import FAST, cameras, run_cli
from tests.report_run import VIEWS


def _scene_data(html: str) -> dict:
    match = re.search(r'<script id="scene-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no 3D data in the page"
    return json.loads(match.group(1).replace("<\\/", "</"))


def _array(b64: str, dtype: str, cols: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype).reshape(-1, cols)


def test_scene_writes_a_self_contained_report(scene_run):
    html = (scene_run["out"] / "report.html").read_text()
    # Nothing loaded from elsewhere: no external src/href, and a policy that forbids fetches.
    assert not re.search(r'(src|href)="(?!data:)[^"#]', html)
    assert "default-src 'none'" in html
    registered = sorted(cameras(scene_run["out"]))
    assert html.count('class="view-row"') == len(registered) == len(VIEWS)


def test_report_geometry_is_the_runs_geometry(scene_run):
    """The page's mesh lies within the run's mesh bounds; each frustum's apex is a camera."""
    import trimesh

    out = scene_run["out"]
    data = _scene_data((out / "report.html").read_text())
    mesh = trimesh.load(out / "mesh.ply", process=False)
    page_vertices = _array(data["mesh"]["positions"], "<f4", 3)
    faces = _array(data["mesh"]["indices"], "<u4", 3)
    assert 0 < len(faces) <= max(len(mesh.faces), 60_000)
    assert faces.max() < len(page_vertices)
    lo, hi = mesh.bounds
    tol = 1e-3 * np.linalg.norm(hi - lo)
    assert np.all(page_vertices >= lo - tol) and np.all(page_vertices <= hi + tol)
    segments = _array(data["frustums"], "<f4", 3).reshape(-1, 2, 3)
    apexes = segments[::2, 0]  # apex -> corner segments come first for each corner
    centers = np.array([np.asarray(c["world_from_cam"])[:3, 3] for c in cameras(out).values()])
    dist = np.linalg.norm(apexes[:, None] - centers[None], axis=-1).min(axis=1)
    assert dist.max() < 1e-4 * np.linalg.norm(hi - lo)
    assert len(segments) == 8 * len(centers)


def test_report_failure_is_one_warning_and_the_run_succeeds(scene_run, capfd, monkeypatch):
    import pipelines.report.build as build

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(build, "build_html", broken)
    out = scene_run["out"]
    argv = ["scene", scene_run["photos"], "-o", out, "--predictions", scene_run["preds"], *FAST]
    code, err = run_cli(argv, capfd)  # every stage is done: this resumes straight to the report
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("WARNING report.html")]
    assert warnings == ["WARNING report.html not written (RuntimeError: disk on fire)"], err


def test_point_residuals_read_the_depth_at_each_point():
    from pipelines.report.gallery import point_residuals

    depth = np.full((10, 20), 2.0, np.float32)
    depth[:, 10:] = 0.0  # right half unknown
    uv = np.array([[1.5, 1.5], [5.5, 8.5], [15.5, 5.5]])  # px of a 40x20 image (2x the map)
    z = np.array([2.0, 2.5, 2.0])
    res = point_residuals(depth, uv, z, (40, 20))
    assert res[0] == pytest.approx(0.0) and res[1] == pytest.approx(0.2)
    assert np.isnan(point_residuals(depth, np.array([[30.5, 5.5]]), np.array([2.0]), (40, 20))[0])


def _camera(center_x: float) -> dict:
    K = [[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]
    world_from_cam = np.eye(4)
    world_from_cam[0, 3] = center_x
    return {
        "K": K,
        "width": 64,
        "height": 48,
        "world_from_cam": world_from_cam.tolist(),
        "cam_from_world": np.linalg.inv(world_from_cam).tolist(),
    }


def test_neighbour_agreement_sees_a_scale_error():
    """Two cameras facing a plane at z = 4: consistent depths agree, a 10 % scale error shows."""
    from pipelines.report.agreement import pair_agreement

    a, b = _camera(0.0), _camera(0.5)
    plane = np.full((48, 64), 4.0, np.float32)
    assert pair_agreement(plane, a, plane, b) == pytest.approx(0.0, abs=1e-6)
    assert pair_agreement(plane, a, 1.1 * plane, b) == pytest.approx(0.1, rel=1e-3)
    far = _camera(100.0)
    assert np.isnan(pair_agreement(plane, a, plane, far))  # no overlap


def test_report_in_chromium(scene_run):
    from selenium.webdriver.common.by import By

    page = scene_run["out"] / "report.html"
    with chromium() as driver:
        requested_urls(driver)  # drain the start page's own requests
        driver.get(page.resolve().as_uri())
        rendered = driver.execute_script(
            "return document.getElementById('view3d').dataset.rendered === '1'"
        )
        assert rendered
        assert console_errors(driver) == []
        requests = requested_urls(driver)
        uri = page.resolve().as_uri()
        assert uri in [url for url, _ in requests]  # the log does see the page's requests
        from_page = [url for url, doc in requests if doc == uri]
        assert [u for u in from_page if not u.startswith(("file:", "data:"))] == []
        elsewhere = [
            u for u, _ in requests if not u.startswith(("file:", "data:", *BROWSER_SCHEMES))
        ]
        assert elsewhere == []
        pixels = element_pixels(driver, driver.find_element(By.ID, "view3d"))
        background = np.array([0x20, 0x23, 0x2A])
        drawn = np.abs(pixels.astype(int) - background).sum(axis=-1) > 30
        assert drawn.mean() > 0.01, f"only {drawn.mean():.2%} of the canvas differs"
        rows = driver.find_elements(By.CSS_SELECTOR, "#gallery tr.view-row")
        assert len(rows) == len(VIEWS)
        loaded = driver.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded


def test_image_command_writes_a_report(scene_run, tmp_path, capfd):
    out = tmp_path / "image"
    photo = scene_run["photos"] / VIEWS[0]
    code, err = run_cli(
        ["-q", "image", photo, "-o", out, "--predictions", scene_run["preds"]], capfd
    )
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert html.count('class="view-row"') == 1
    data = _scene_data(html)
    assert len(_array(data["mesh"]["indices"], "<u4", 3)) > 0
    assert not re.search(r'(src|href)="(?!data:)[^"#]', html)
