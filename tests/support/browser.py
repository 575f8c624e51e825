"""Debian's headless Chromium, driven by Selenium, for tests of what a person looks at.

`scripts/test` installs Chromium and ChromeDriver (`scripts/install-chromium`); Selenium's own
browser download is not reachable from these machines, so the Debian binaries are named here.
A missing browser fails the test that asked for it, with the reason, rather than skipping it.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which(CHROMIUM), shutil.which(CHROMEDRIVER)
    if binary is None or driver is None:
        raise RuntimeError("Chromium and ChromeDriver are not installed: run scripts/install-chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    # Console messages, so a test can assert that a page logged no errors.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """Saves a full-page screenshot under test-artifacts/ (kept by CI) and returns its path."""
    folder = Path(__file__).resolve().parents[2] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(browser.get_window_size()["width"], max(int(height), 600))
    path = folder / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
