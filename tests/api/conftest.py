"""API clients on a real store loaded through the pipeline (see sample_people.py).

"Today" is injected through `create_app(today=...)`, so age boundaries are tested on the
dates that matter without touching the clock.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import falcon.testing
import peewee
import pytest
from minio import Minio
from sample_people import API_TOKEN, SOURCE_KEY, TODAY, build_archive, load_archive

from api.app import create_app
from shared.config import Settings
from shared.db import open_database
from shared.models import Run


@pytest.fixture
def loaded(settings: Settings, minio: Minio, store_db: peewee.Database, tmp_path: Path) -> Run:
    """The store holding PEOPLE, loaded through the pipeline; the finished run."""
    return load_archive(settings, minio, tmp_path, build_archive(), SOURCE_KEY)


ClientFactory = Callable[..., falcon.testing.TestClient]


@pytest.fixture
def make_client(settings: Settings, minio: Minio) -> ClientFactory:
    """A client on a fresh app; `today=` moves the app's clock, other keywords reach create_app."""

    def make(
        today: date = TODAY, app_settings: Settings | None = None, **overrides: object
    ) -> falcon.testing.TestClient:
        app = create_app(app_settings or settings, today=lambda: today, **overrides)
        return falcon.testing.TestClient(app)

    return make


@pytest.fixture
def client(make_client: ClientFactory, loaded: Run) -> falcon.testing.TestClient:
    return make_client()


@pytest.fixture
def token_settings(settings: Settings) -> Settings:
    return replace(settings, api_token=API_TOKEN)


@pytest.fixture
def dead_store() -> None:
    """The models bound to a PostgreSQL port nobody listens on."""
    open_database("postgresql://postgres@127.0.0.1:9/zipflow")
