"""Fixtures for the deployment checks: the compose file and .env.example, parsed once."""

from typing import Any

import pytest
import yaml
from infra_support import COMPOSE, ENV_EXAMPLE, read_env_file


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="session")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)
