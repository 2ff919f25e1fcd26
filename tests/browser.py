"""Debian's chromium, headless, driven by selenium; tests skip cleanly when either is absent."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # WebGL without a GPU: SwiftShader, Chromium's CPU implementation.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--window-size=1280,900",
]


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    return browser, driver


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A fresh headless Chromium (own profile folder) that logs console and network events."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="lotus-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def requested_urls(driver) -> list[tuple[str, str]]:
    """(url, url of the document asking) of every request the browser's network stack saw
    since the last call (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            params = message["params"]
            urls.append((params["request"]["url"], params.get("documentURL", "")))
    return urls


# Chromium's own pages (its new-tab page) load chrome:// resources while it starts.
BROWSER_SCHEMES = ("chrome:", "chrome-untrusted:", "devtools:")


def element_pixels(driver, element) -> np.ndarray:
    """(H, W, 3) uint8 screenshot of one element."""
    import io

    from PIL import Image

    png = element.screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
