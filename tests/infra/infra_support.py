"""Helpers for the deployment checks: where the files are, how compose resolves them, the linters.

No Docker engine runs here, so these tests check the deployment files as text: against
their schemas, with the linters, and against the worker's own settings.
"""

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "compose.yml"
NOTIFY_SCRIPT = ROOT / "infra" / "minio-notify.sh"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
INFRA_ENV = ROOT / "infra" / ".env"
WORKFLOWS = ROOT / ".github" / "workflows"
README = ROOT / "README.md"
PYPROJECT = ROOT / "pyproject.toml"

# Compose interpolation: $$ (a literal $), ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|(?P<bare>\w+))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve compose's variables in `value` as `docker compose` would with `env` set."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        given = env.get(name)
        if match["op"] == ":-" and not given:
            return match["default"]
        if match["op"] == "-" and given is None:
            return match["default"]
        if given is None:
            raise AssertionError(f"${{{name}}} has no default and is not set")
        return given

    return INTERPOLATION.sub(replace, value)


def compose_strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed compose file: what compose interpolates (not comments)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from compose_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from compose_strings(value)


def compose_variables(compose: dict[str, Any]) -> set[str]:
    """Names of the variables a compose file interpolates."""
    return {
        match["braced"] or match["bare"]
        for text in compose_strings(compose)
        for match in INTERPOLATION.finditer(text)
        if not match["escaped"]
    }


def compose_defaults(compose: dict[str, Any]) -> dict[str, str]:
    """The development default each ${VAR:-default} in a compose file falls back to."""
    return {
        match["braced"]: match["default"]
        for text in compose_strings(compose)
        for match in INTERPOLATION.finditer(text)
        if match["braced"] and match["op"]
    }


def service_environment(compose: dict[str, Any], service: str, env: Mapping[str, str]) -> dict:
    """A service's `environment:` with variables resolved; values stay as YAML typed them."""
    raw = compose["services"][service].get("environment", {})
    return {
        name: interpolate(value, env) if isinstance(value, str) else value
        for name, value in raw.items()
    }


def compose_profiles(flags: list[str], env: Mapping[str, str]) -> list[str]:
    """The profiles `docker compose` runs: the --profile flags, or else COMPOSE_PROFILES.

    As compose-go's cli.WithDefaultProfiles does: flags replace the variable, they do not
    add to it. `env` holds what compose read from its env file: infra/.env, beside the
    compose file, unless --env-file names another (cli.WithEnvFiles).
    """
    if flags:
        return flags
    return [name.strip() for name in env.get("COMPOSE_PROFILES", "").split(",")]


def active_services(compose: dict[str, Any], profiles: list[str]) -> dict[str, dict]:
    """The services compose starts under `profiles`: those with no profile or one of them."""
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def network_names(services: Mapping[str, dict]) -> dict[str, list[str]]:
    """Which of `services` answer to each host name on the stack's network: name and aliases."""
    names: dict[str, list[str]] = {}
    for name, service in services.items():
        aliases = service.get("networks", {}).get("default", {}).get("aliases", [])
        for host in [name, *aliases]:
            names.setdefault(host, []).append(name)
    return names


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file, comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def tool(name: str) -> str:
    """A linter installed by the test extras, beside this Python, never one from elsewhere."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is missing: install the test extras (pip install -e '.[test]')")
    return str(path)


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a checker; its own output is what a failing test should show."""
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False
    )
