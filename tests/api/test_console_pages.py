"""The console's page shells, served without a browser: HTML, escaped ids, links from the
settings, no inline script, and every file shipped in the package."""

import re
import tomllib
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path

import pytest
from falcon.testing import TestClient

from api.console import pages
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_DIR = ROOT / "api" / "console"
PAGES = ("/", "/ui/users", "/ui/users/1", "/ui/runs", "/ui/runs/1", "/ui/upload", "/docs")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@pytest.fixture
def pages_client(make_client, store_db) -> TestClient:
    return make_client()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_html_with_its_own_scripts_only(pages_client: TestClient, path: str) -> None:
    result = pages_client.simulate_get(path)
    assert result.status_code == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    html = result.text
    assert html.startswith("<!doctype html>")
    # No inline script, no other origin: the CSP would refuse them anyway.
    for script in re.findall(r"<script[^>]*>", html):
        assert re.fullmatch(r'<script type="module" src="/static/[a-z]+\.js">', script), script
    assert "http://" not in html and "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert pages_client.simulate_get(asset).status_code == 200, asset


def test_an_id_in_the_url_is_escaped_into_the_page(pages_client: TestClient) -> None:
    html = pages_client.simulate_get("/ui/users/%3Cscript%3Ealert(1)%22").text
    assert "<script>alert(1)" not in html
    assert 'data-user-id="&lt;script&gt;alert(1)&#34;"' in html
    html = pages_client.simulate_get('/ui/runs/1"onmouseover="x').text
    assert 'data-run-id="1&#34;onmouseover=&#34;x"' in html


def test_operator_links_appear_only_when_configured(make_client, store_db, settings) -> None:
    assert "RabbitMQ management" not in make_client().simulate_get("/").text
    linked = replace(
        settings,
        rabbitmq_management_url="http://localhost:15672",
        minio_console_url="https://minio.example/console?a=1&b=2",
    )
    html = make_client(app_settings=linked).simulate_get("/").text
    assert (
        '<a href="http://localhost:15672" rel="noopener noreferrer">RabbitMQ management</a>' in html
    )
    assert 'href="https://minio.example/console?a=1&amp;b=2"' in html


def test_docs_describe_every_operation(pages_client: TestClient) -> None:
    html = pages_client.simulate_get("/docs").text
    document = pages_client.simulate_get("/openapi.json").json
    for path, item in document["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in html
    assert "q" in re.findall(r"<td><code>(\w+)</code></td><td>query</td>", html)


def test_every_console_file_is_shipped_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.console"]
    files = [
        path.relative_to(CONSOLE_DIR).as_posix()
        for folder in ("templates", "static")
        for path in (CONSOLE_DIR / folder).iterdir()
    ]
    assert files
    unshipped = [name for name in files if not any(fnmatch(name, p) for p in patterns)]
    assert unshipped == []
    assert pages.PACKAGE.joinpath("static", "common.js").is_file()


def test_links_must_be_web_urls() -> None:
    with pytest.raises(ValueError, match="ZIPFLOW_RABBITMQ_MANAGEMENT_URL"):
        Settings.from_env({"ZIPFLOW_RABBITMQ_MANAGEMENT_URL": "javascript:alert(1)"})
