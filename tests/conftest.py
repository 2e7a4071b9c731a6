"""Fixtures shared by every test: a real store (SQLite, and PostgreSQL when
ZIPFLOW_TEST_POSTGRES_URL is set), a real S3 endpoint (moto's server) and names that
never collide between tests or runs."""

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import peewee
import psycopg2
import pytest
from minio import Minio
from moto.server import ThreadedMotoServer

from shared.config import Settings
from shared.db import database, open_database
from shared.models import create_schema
from shared.storage import ensure_buckets

POSTGRES_URL = os.environ.get("ZIPFLOW_TEST_POSTGRES_URL")
S3_ACCESS_KEY = "testing-access"
S3_SECRET_KEY = "testing-secret"


def unique(prefix: str) -> str:
    """A name no other test or run uses, valid for buckets, queues and schemas."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'zipflow.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("ZIPFLOW_TEST_POSTGRES_URL is not set")
    schema = unique("t").replace("-", "_")
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        if database.obj is not None:
            database.close()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def store_db(database_url: str) -> Iterator[peewee.Database]:
    """The models bound to a fresh database with the schema created."""
    db = open_database(database_url)
    create_schema()
    yield db
    db.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """host:port of a moto S3 server that lives for the whole test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, s3_endpoint: str, database_url: str) -> Settings:
    """Settings for one test: its own store, buckets, queue names and data directory."""
    name = unique("zf")
    return replace(
        Settings(),
        database_url=database_url,
        data_dir=tmp_path / "data",
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        source_bucket=f"{name}-source",
        processed_bucket=f"{name}-processed",
        exchange=f"{name}.events",
        queue=f"{name}.objects",
        dead_letter=f"{name}.dead",
    )


@pytest.fixture
def minio(settings: Settings) -> Minio:
    """A real minio SDK client on the test's S3 endpoint, with both buckets created."""
    client = Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=False,
    )
    ensure_buckets(client, settings)
    return client


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's own checker. scripts/test installs it (Debian's prometheus package) when
    it runs as root; elsewhere its cases are skipped, except in CI, where they must run."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: apt-get install prometheus (scripts/test does, as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
