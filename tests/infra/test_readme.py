"""README.md and docs/ stay true to the code: every setting, command, option and endpoint,
the logins, and every link between them."""

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

import falcon.testing
import pytest
from falcon import inspect
from infra_support import README, ROOT, compose_defaults

from api.app import create_app
from shared.config import ArchiveLimits, Settings
from shared.db import open_database
from zipflow.cli import build_parser

DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

TABLE_ROW = re.compile(r"^\| `(ZIPFLOW_\w+)` \| ([^|]+) \|", re.MULTILINE)
ROUTE_PARAMETER = re.compile(r"\{[^}]*\}")
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
# A zipflow command line as typed: at the start of a code line or span, after an optional
# prompt and VAR=value assignments.
COMMAND_LINE = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*zipflow (\S+)(.*)$")
OPTION = re.compile(r"(?<![\w-])(--?[a-z][\w-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
VARIABLE = re.compile(r"\bZIPFLOW_[A-Z0-9_]*[A-Z0-9](?![\w*])|\bZIPFLOW_[A-Z0-9_]+\*")
# Variables the test script reads, not zipflow itself.
TEST_VARIABLES = {"ZIPFLOW_TEST_POSTGRES_URL"}


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


def code_lines(text: str) -> list[str]:
    """Every line of every fenced block and every inline code span."""
    lines = [line for block in FENCED.findall(text) for line in block.splitlines()]
    prose = FENCED.sub("", text)
    return lines + INLINE.findall(prose)


def zipflow_commands(text: str) -> list[tuple[str, str]]:
    """(subcommand, rest of the line) for each zipflow command line shown in `text`."""
    found = []
    for line in code_lines(text):
        match = COMMAND_LINE.match(line.strip())
        if match:
            rest = re.split(r" (?:&&|\||;|>) ", match[2])[0]
            found.append((match[1], rest))
    return found


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCED.sub("", text), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).lower().replace(" ", "-") for heading in headings}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.fixture(scope="module", params=PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def page(request) -> Path:
    return request.param


def test_configuration_lists_every_setting_with_its_default() -> None:
    table = CONFIGURATION.read_text()
    documented = {name: default.strip() for name, default in TABLE_ROW.findall(table)}
    assert documented == expected_settings()


def test_every_variable_named_in_the_docs_is_a_setting(page) -> None:
    known = set(expected_settings()) | TEST_VARIABLES
    named = {
        name
        for name in VARIABLE.findall(page.read_text())
        if name not in known and not any(k.startswith(name.rstrip("*")) for k in known)
    }
    assert not named, f"{page.name} names variables zipflow does not read: {sorted(named)}"


def test_readme_documents_every_command(readme) -> None:
    for command in subcommands(build_parser()):
        assert f"`zipflow {command}" in readme, f"zipflow {command} is not documented"


def test_every_command_shown_exists_with_its_options(page) -> None:
    parser = build_parser()
    commands = subcommands(parser)
    for command, rest in zipflow_commands(page.read_text()):
        if command.startswith("-"):
            sub, options = parser, {command, *OPTION.findall(rest)}
        elif command == "COMMAND":  # a placeholder: the options must exist on every command
            for sub in commands.values():
                assert set(OPTION.findall(rest)) <= option_strings(sub), f"{page.name}: {rest}"
            continue
        else:
            assert command in commands, f"{page.name}: zipflow {command} is no command"
            sub, options = commands[command], set(OPTION.findall(rest))
        unknown = options - option_strings(sub)
        assert not unknown, f"{page.name}: zipflow {command} has no option {sorted(unknown)}"


def test_the_command_check_reads_commands_and_options() -> None:
    """The extraction above must see commands, or the check passes on anything."""
    text = "```sh\n$ zipflow process users.zip --csv out.csv\n```\nsee `zipflow api --port 1`"
    assert zipflow_commands(text) == [("process", " users.zip --csv out.csv"), ("api", " --port 1")]


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


def test_readme_opens_with_trying_it(readme) -> None:
    """The first sections a reader meets: trying it without Docker, then the Docker stack."""
    sections = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert sections[:3] == ["Try it in one minute", "Quickstart with Docker", "Drop a zip"]


def test_links_reach_files_and_sections_that_exist(page) -> None:
    text = page.read_text()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {path}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page.name}: {target} names no section"


def test_every_bench_script_named_exists(page) -> None:
    for script in re.findall(r"\bbench/\w+\.py\b", page.read_text()):
        assert (ROOT / script).is_file(), f"{page.name} names {script}, which does not exist"


# The day the "Try it in one minute" outputs were captured: ages in them are as of then.
TRY_IT_CAPTURED = date(2026, 12, 2)
TRY_IT_DIR = "/tmp/zipflow"


def try_it_block(readme: str) -> str:
    section = readme.split("## Try it in one minute", 1)[1].split("\n## ", 1)[0]
    return "\n".join(
        block for block in FENCED.findall(section) if "$ zipflow" in block or "$ curl" in block
    )


def shown_outputs(block: str) -> dict[str, list[str]]:
    """Each `$ command` of a text block with the lines it printed."""
    outputs: dict[str, list[str]] = {}
    command = None
    for line in block.splitlines():
        if line.startswith("$ "):
            command = line[2:]
            outputs[command] = []
        elif command is not None and line:
            outputs[command].append(line)
    return outputs


def test_try_it_in_one_minute_prints_what_the_readme_shows(readme, tmp_path) -> None:
    """The front door's commands, run for real in a fresh folder, without MinIO."""
    shown = shown_outputs(try_it_block(readme))
    env = {
        **os.environ,
        "ZIPFLOW_S3_ACCESS_KEY": "",
        "ZIPFLOW_STORAGE": "auto",
        "ZIPFLOW_DATABASE_URL": "sqlite:///data/zipflow.db",
        "ZIPFLOW_DATA_DIR": "data",
    }
    for command in (
        "zipflow demo-data users.zip --users 1000",
        "zipflow process users.zip --csv output.csv",
    ):
        result = subprocess.run(
            [sys.executable, "-m", "zipflow", *command.split()[1:]],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        printed = result.stdout.replace(str(tmp_path), TRY_IT_DIR).splitlines()
        expected = shown[command]
        timing = re.compile(r" in [\d.]+s ")
        assert [timing.sub(" in Ns ", line) for line in printed] == [
            timing.sub(" in Ns ", line) for line in expected
        ]

    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = open_database(f"sqlite:///{tmp_path / 'data' / 'zipflow.db'}")
    client = falcon.testing.TestClient(create_app(settings, today=lambda: TRY_IT_CAPTURED))
    for command, lines in shown.items():
        if not command.startswith("curl"):
            continue
        path = re.search(r"localhost:8000(/\S*?)'?(?: |$)", command)[1]
        result = client.simulate_get(path.split("?")[0], query_string=path.partition("?")[2])
        if "-w" in command:
            assert lines == [
                f"{result.status_code} {result.headers['content-type']} {len(result.content)} bytes"
            ]
        else:
            assert json.loads(lines[0]) == result.json, command
    store.close()
