"""README.md stays true to the code: every setting, command and endpoint, and the logins."""

import re
from dataclasses import fields

import pytest
from falcon import inspect
from infra_support import README, compose_defaults

from api.app import create_app
from shared.config import ArchiveLimits, Settings
from zipflow.cli import build_parser

TABLE_ROW = re.compile(r"^\| `(ZIPFLOW_\w+)` \| ([^|]+) \|", re.MULTILINE)
ROUTE_PARAMETER = re.compile(r"\{[^}]*\}")


def documented_default(value: object) -> str:
    """How the configuration table shows a default."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`" if text else "(empty)"


def expected_settings() -> dict[str, str]:
    defaults = Settings()
    expected = {}
    for field in fields(Settings):
        if field.name != "limits":
            expected[f"ZIPFLOW_{field.name.upper()}"] = getattr(defaults, field.name)
    for field in fields(ArchiveLimits):
        expected[f"ZIPFLOW_{field.name.upper()}"] = getattr(defaults.limits, field.name)
    return {name: documented_default(value) for name, value in expected.items()}


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


def test_configuration_table_lists_every_setting_with_its_default(readme) -> None:
    documented = {name: default.strip() for name, default in TABLE_ROW.findall(readme)}
    assert documented == expected_settings()


def test_readme_documents_every_command(readme) -> None:
    subparsers = build_parser()._subparsers._group_actions[0]
    for command in subparsers.choices:
        assert f"`zipflow {command}" in readme, f"zipflow {command} is not documented"


def test_readme_has_a_curl_example_for_every_endpoint(readme) -> None:
    app = create_app(Settings())
    for route in inspect.inspect_routes(app):
        path = ROUTE_PARAMETER.split(route.path)
        pattern = r"[^/\s'?]+".join(re.escape(part) for part in path)
        assert re.search(rf"curl [^\n]*localhost:8000{pattern}(?![\w/])", readme), route.path


def test_readme_gives_the_logins_compose_really_uses(readme, compose) -> None:
    for name, value in compose_defaults(compose).items():
        assert value in readme, f"the README does not give {name}'s default {value!r}"


def test_readme_starts_the_stack_with_one_command(readme) -> None:
    assert "docker compose -f infra/compose.yml up\n" in readme
    assert "./scripts/test" in readme
    assert "```mermaid" in readme


def test_readme_links_to_sections_that_exist(readme) -> None:
    headings = re.findall(r"^#+ (.+)$", readme, re.MULTILINE)
    # GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
    anchors = {re.sub(r"[^\w\- ]", "", heading).lower().replace(" ", "-") for heading in headings}
    for target in re.findall(r"\]\(#([^)]+)\)", readme):
        assert target in anchors, f"#{target} names no section"
