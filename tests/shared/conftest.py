"""The zipflow command as a user runs it, for the command-line tests."""

import os
import subprocess
import sys

import pytest

# No MinIO unless a test says otherwise: the local directory is the object store.
NO_MINIO = {"ZIPFLOW_S3_ACCESS_KEY": "", "ZIPFLOW_S3_SECRET_KEY": "", "ZIPFLOW_STORAGE": "auto"}


@pytest.fixture
def zipflow(tmp_path):
    """Run `zipflow ARGS` in tmp_path on a SQLite store there, for cases where the store's
    engine does not matter; extra variables for one call go in `env`."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "zipflow", *args],
            env={
                **os.environ,
                "ZIPFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'zipflow.db'}",
                "ZIPFLOW_DATA_DIR": str(tmp_path / "data"),
                **NO_MINIO,
                **(env or {}),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
