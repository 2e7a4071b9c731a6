"""Settings come from ZIPFLOW_* variables once, with defaults, and bad values fail loudly."""

from pathlib import Path

import pytest

from shared.config import ArchiveLimits, ConfigError, Settings
from shared.db import open_database


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.mode, settings.database_url, settings.data_dir) == (
        "snapshot",
        "sqlite:///data/zipflow.db",
        Path("data"),
    )
    assert settings.image_path("1000") == "processed/images/1000.png"


def test_variables_override_fields_and_archive_limits():
    settings = Settings.from_env(
        {
            "ZIPFLOW_MODE": "merge",
            "ZIPFLOW_S3_SECURE": "on",
            "ZIPFLOW_RECONCILE_SECONDS": "0",
            "ZIPFLOW_DATA_DIR": "/srv/zipflow",
            "ZIPFLOW_PROCESSED_BUCKET": "out",
            "ZIPFLOW_MAX_MEMBERS": "10",
            "ZIPFLOW_MAX_RATIO": "50",
            "UNRELATED": "x",
        }
    )
    assert (settings.mode, settings.s3_secure, settings.reconcile_seconds) == ("merge", True, 0)
    assert settings.data_dir == Path("/srv/zipflow")
    assert settings.image_path("7") == "out/images/7.png"
    assert settings.limits == ArchiveLimits(max_members=10, max_ratio=50)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ZIPFLOW_MODE", "append", "ZIPFLOW_MODE must be one of snapshot, merge"),
        ("ZIPFLOW_S3_SECURE", "maybe", "ZIPFLOW_S3_SECURE must be true or false"),
        ("ZIPFLOW_API_THREADS", "many", "ZIPFLOW_API_THREADS must be a whole number"),
        ("ZIPFLOW_MAX_MEMBERS", "-1", "ZIPFLOW_MAX_MEMBERS must not be negative"),
        ("ZIPFLOW_LOG_FORMAT", "xml", "ZIPFLOW_LOG_FORMAT must be one of text, json"),
        ("ZIPFLOW_WORKER_METRICS_PORT", "70000", "ZIPFLOW_WORKER_METRICS_PORT must be a port"),
        ("ZIPFLOW_READ_PROCESSES", "0", "ZIPFLOW_READ_PROCESSES must be at least 1"),
        (
            "ZIPFLOW_MINIO_CONSOLE_URL",
            "javascript:alert(1)",
            "ZIPFLOW_MINIO_CONSOLE_URL must be an http:// or https:// URL",
        ),
        ("ZIPFLOW_RABBITMQ_MANAGEMENT_URL", "localhost:15672", "must be an http:// or https://"),
    ],
)
def test_a_bad_value_names_the_variable(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'nested' / 'z.db'}")
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10_000
    db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_statement_timeout_keeps_the_options_of_the_url(database_url):
    db = open_database(database_url, statement_timeout_seconds=3)
    assert db.execute_sql("SHOW statement_timeout").fetchone()[0] == "3s"
    # The test URL sets the schema through the same libpq options.
    assert db.execute_sql("SHOW search_path").fetchone()[0].startswith("t_")
    db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_no_statement_timeout_unless_asked(database_url):
    db = open_database(database_url)
    assert db.execute_sql("SHOW statement_timeout").fetchone()[0] == "0"
    db.close()
