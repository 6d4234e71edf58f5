"""A real headless Chromium and the console on loopback, for test_browser.py and
docs/screenshots.py. Debian's `chromium` and `chromium-driver` packages (.ci/run installs
them) provide the browser and its driver."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from campaign.web import ConsoleConfig, create_app


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian package {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def chrome(downloads: Path | None = None, width: int = 1280, height: int = 900):
    """A headless Chromium driven by Selenium; files it downloads land in `downloads`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    if downloads is not None:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
    return driver


class _ThreadServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.startup_over.set()

    def install_signal_handlers(self) -> None:  # not the main thread
        pass


@contextlib.contextmanager
def running_console(config: ConsoleConfig) -> Iterator[str]:
    """The console served by uvicorn on a free loopback port in a thread; yields its URL."""
    server = _ThreadServer(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    try:
        if not server.startup_over.wait(20) or not server.started:
            raise RuntimeError("the console did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
