"""Headless Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium: pages used as a person would.

Browser tests skip when the browser is missing, unless EVUD_REQUIRE_BROWSER=1 (CI sets it), where they fail.
Selenium is given both binaries explicitly, so Selenium Manager (which would download a driver) never runs,
and Chromium resolves no host name, so a page under test cannot reach the network.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRE_ENV = "EVUD_REQUIRE_BROWSER"
WINDOW = (1400, 1000)
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--autoplay-policy=no-user-gesture-required",
         # Every host name fails to resolve: nothing on the page can reach the network.
         "--host-resolver-rules=MAP * ~NOTFOUND")


def browser_missing() -> str | None:
    """Why a browser test cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            return f"{path} is missing: apt-get install -y chromium chromium-driver (Debian), or run .ci/run"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def require_browser() -> None:
    """Skip (or, with EVUD_REQUIRE_BROWSER=1, fail) when Chromium, its driver or Selenium is missing."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@contextmanager
def chromium(profile_dir: Path, download_dir: Path) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile) whose downloads land in download_dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    # `performance` carries the DevTools Network events: which URLs a page requested.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium per test module; `browser.download_dir` is where its downloads go."""
    require_browser()
    root = tmp_path_factory.mktemp("chromium")
    (root / "downloads").mkdir()
    with chromium(root / "profile", root / "downloads") as driver:
        driver.download_dir = root / "downloads"
        yield driver


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until condition() is truthy; its value, or an AssertionError naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_for_download(download_dir: Path, name: str, timeout: float = 10.0) -> Path:
    """The finished download (Chromium writes a .crdownload first, then renames it)."""
    path = download_dir / name
    wait_until(lambda: path.is_file() and not list(download_dir.glob("*.crdownload")), timeout, f"download {name}")
    return path


# Documents of the browser itself (its new-tab page loads while a test's page does, on Chromium 150): their
# requests are not the page's.
BROWSER_OWN_DOCUMENTS = ("chrome://", "chrome-untrusted://", "chrome-search://", "devtools://")


def requested_urls(driver: Any) -> list[str]:
    """Every URL a page requested since the last call (DevTools Network events), the browser's own left out."""
    return page_requested_urls(driver.get_log("performance"))


def page_requested_urls(performance_log: list[dict[str, Any]]) -> list[str]:
    """The URLs of the Network.requestWillBeSent events of a performance log, except those of documents that
    belong to the browser itself (chrome:// pages); a page's request to any other scheme or host is kept."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        params = message["params"]
        if not params.get("documentURL", "").startswith(BROWSER_OWN_DOCUMENTS):
            urls.append(params["request"]["url"])
    return urls


def save_artifact(driver: Any, name: str) -> Path:
    """A screenshot kept after the run: $EVUD_ARTIFACTS, else test-artifacts/ at the project root."""
    root = Path(os.environ.get("EVUD_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    driver.save_screenshot(str(path))
    return path
