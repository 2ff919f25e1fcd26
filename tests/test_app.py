"""`lotus-recon app`: starts, serves a page Chromium loads without reaching the network, runs a
small scene end to end through the page (photos dropped on the file input, button clicked),
shows the stages, the report with its drawn 3D view and the downloads, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.browser import chromium, console_errors, element_pixels, requested_urls
from tests.cli_helpers import FAST, ROOM
from tests.report_run import VIEWS
from tests.test_view import REPO, free_port, wait_for_line


def _stage_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "stages").text


def test_app_runs_a_scene_through_the_page(scene_run, tmp_path):
    pytest.importorskip("gradio")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    cmd = [sys.executable, "-m", "pipelines.cli", "app", "--port", str(port)]
    cmd += ["--workdir", str(tmp_path / "runs"), "--predictions", str(scene_run["preds"]), *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = wait_for_line(proc, "lotus-recon app: http://", timeout=120).split()[2]
        with chromium() as driver:
            driver.get(url)
            files = WebDriverWait(driver, 60).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#scene-files input[type=file]")
            )
            files[0].send_keys("\n".join(str(ROOM / "images" / n) for n in VIEWS))
            WebDriverWait(driver, 60).until(lambda d: VIEWS[-1] in d.page_source)
            driver.find_element(By.ID, "run-scene").click()
            WebDriverWait(driver, 60).until(lambda d: "running" in _stage_text(d))
            WebDriverWait(driver, 400).until(lambda d: "Run " in _stage_text(d))
            assert "Run finished" in _stage_text(driver), _stage_text(driver)
            for stage in ("images", "sfm", "predict", "align", "fuse"):
                assert f"{stage}: done" in _stage_text(driver)
            downloads = driver.find_element(By.ID, "downloads").text
            assert "mesh" in downloads and "report" in downloads
            frame = driver.find_element(By.CSS_SELECTOR, "#report iframe")
            driver.switch_to.frame(frame)
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script(
                    "return document.getElementById('view3d').dataset.rendered === '1'"
                )
            )
            rows = driver.find_elements(By.CSS_SELECTOR, "#gallery tr.view-row")
            assert len(rows) == len(VIEWS)
            pixels = element_pixels(driver, driver.find_element(By.ID, "view3d"))
            drawn = np.abs(pixels.astype(int) - [0x20, 0x23, 0x2A]).sum(axis=-1) > 30
            assert drawn.mean() > 0.01
            driver.switch_to.default_content()
            assert console_errors(driver) == []
            local = (url, "data:", "blob:", "chrome:", "chrome-untrusted:", "about:")
            assert [u for u, _ in requested_urls(driver) if not u.startswith(local)] == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
