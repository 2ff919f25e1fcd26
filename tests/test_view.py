"""`lotus-recon view OUT`: lifts aligned depth to the right world points; starts, prints its URL,
serves a page Chromium loads, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.browser import chromium, console_errors
from tests.report_run import VIEWS

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """The first stdout line containing `needle` (fails on exit or timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            # Keep reading what it prints later, so a full pipe never blocks the server.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return line
        if not line and proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} before printing {needle!r}")
    pytest.fail(f"no {needle!r} within {timeout} s")


def test_depth_points_land_on_the_plane():
    """A plane at z = 3 in front of a camera moved to x = 1 lifts to world points at x in the
    frustum, z = 3 (identity rotation), and the random subset keeps only valid pixels."""
    from pipelines.view import depth_points

    world_from_cam = np.eye(4)
    world_from_cam[0, 3] = 1.0
    cam = {"K": [[40, 0, 32], [0, 40, 24], [0, 0, 1]], "width": 64, "height": 48}
    cam["world_from_cam"] = world_from_cam.tolist()
    depth = np.full((24, 32), 3.0, np.float32)  # half resolution: K is scaled
    depth[:, :4] = 0.0
    xyz, (v, u) = depth_points(depth, cam, 500, np.random.default_rng(0))
    assert len(xyz) == 500 and np.all(u >= 4)
    assert np.allclose(xyz[:, 2], 3.0)
    expected_x = 1.0 + ((u + 0.5) * 2 - 32) / 40 * 3.0
    assert np.allclose(xyz[:, 0], expected_x)


def test_view_serves_a_page_and_stops(scene_run):
    pytest.importorskip("viser")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "view",
        str(scene_run["out"]),
        "--port",
        str(port),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = wait_for_line(proc, "lotus-recon view: http://", timeout=60)
        url = line.split()[2]
        assert url == f"http://127.0.0.1:{port}"
        with chromium() as driver:
            driver.get(url)
            WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.TAG_NAME, "canvas"))
            # The GUI lists one aligned-depth checkbox per view once the client is connected.
            text = "return document.body.innerText"
            WebDriverWait(driver, 90).until(lambda d: VIEWS[-1] in d.execute_script(text))
            assert all(name in driver.execute_script(text) for name in VIEWS)
            assert console_errors(driver) == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
