"""Browser tests of the console: Debian's headless Chromium driven by selenium, against the
real app served by waitress on a real SQLite store and the S3 stand-in.

Without Chromium and its driver the tests are skipped with a loud reason; under CI=true
that is a failure instead, so CI cannot pass without having run them.
"""

import http.client
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import falcon
import pytest
import waitress
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from api.app import create_app
from shared.config import Settings

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


def _find(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    browser = _find(("chromium", "chromium-browser"))
    driver = _find(("chromedriver",))
    if browser and driver:
        return browser, driver
    message = (
        "BROWSER TESTS NOT RUN: Debian's chromium and chromium-driver are not installed "
        "(scripts/test installs them when run as root: apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser(chromium_paths: tuple[str, str]) -> Iterator[WebDriver]:
    """One headless Chromium for the session, with a fresh profile; nothing is downloaded."""
    binary, driver = chromium_paths
    profile = tempfile.mkdtemp(prefix="zipflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield chrome
    chrome.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser with an empty tab state: no token left from another test."""
    yield browser
    browser.get("about:blank")
    browser.delete_all_cookies()
    for handle in browser.window_handles[1:]:
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])
    browser.execute_script("try { sessionStorage.clear() } catch (e) {}")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the console reads the API, whose stores are tested elsewhere on both."""
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@dataclass
class LiveServer:
    host: str
    port: int
    server: object

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get_json(self, path: str, token: str | None = None) -> object:
        status, body = self.request(path, token)
        assert status == 200, (path, status, body)
        return json.loads(body)


@pytest.fixture
def serve() -> Iterator[Callable[[falcon.App], LiveServer]]:
    """Serve an app with waitress on a free port for the length of the test."""
    started: list[LiveServer] = []

    def start(app: falcon.App) -> LiveServer:
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=server.run, daemon=True, name="console-server").start()
        live = LiveServer("127.0.0.1", server.effective_port, server)
        started.append(live)
        return live

    yield start
    for live in started:
        live.server.close()


@pytest.fixture
def console(settings: Settings, minio, store_db, serve) -> Callable[..., LiveServer]:
    """Serve the app for `settings` (or other settings given), buckets created."""

    def start(app_settings: Settings | None = None, **overrides: object) -> LiveServer:
        return serve(create_app(app_settings or settings, **overrides))

    return start
