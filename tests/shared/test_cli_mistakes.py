"""Every foreseeable mistake ends with one line on stderr and a non-zero exit, from the real
command; only a bug prints a traceback, and then says where to report it."""

import argparse
import http.client
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from shared.cli import BUG_REPORT, EXIT_BUG, run_entry_point
from tests.conftest import POSTGRES_URL
from tests.shared.conftest import NO_MINIO
from tests.shared.zips import users_zip
from tests.worker.worker_support import SlowProxy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


SHAPE_ADVICE = (
    "is not a store zipflow can use: give sqlite:///relative/path.db,"
    " sqlite:////absolute/path.db or postgresql://user:password@host:5432/database"
)


@pytest.mark.parametrize("command", ["process", "api", "worker", "reprocess"])
@pytest.mark.parametrize("url", ["mysql://user:secret@localhost/db", "zipflow.db"])
def test_a_database_url_of_no_known_shape_is_one_line_before_anything_runs(
    zipflow, tmp_path, command, url
):
    args = (
        [command, str(users_zip(tmp_path / "a.zip", ["1"]))] if command == "process" else [command]
    )
    result = zipflow(*args, env={"ZIPFLOW_DATABASE_URL": url})
    masked = url.replace(":secret@", ":***@")
    assert result.returncode == 2
    assert one_line(result) == f"zipflow {command}: ZIPFLOW_DATABASE_URL {masked!r} {SHAPE_ADVICE}"


def test_a_store_server_that_does_not_answer_is_one_line(zipflow, tmp_path):
    url = f"postgresql://zipflow:secret@127.0.0.1:{free_port()}/zipflow"
    result = zipflow(
        "process", str(users_zip(tmp_path / "a.zip", ["1"])), env={"ZIPFLOW_DATABASE_URL": url}
    )
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(
        "zipflow process: cannot open the store postgresql://zipflow:***@127.0.0.1:"
    )
    assert "Connection refused" in line and "secret" not in line


@pytest.mark.skipif(not POSTGRES_URL, reason="ZIPFLOW_TEST_POSTGRES_URL is not set")
def test_a_database_that_does_not_exist_is_one_line(zipflow, tmp_path):
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database_zipflow"
    result = zipflow(
        "process", str(users_zip(tmp_path / "a.zip", ["1"])), env={"ZIPFLOW_DATABASE_URL": url}
    )
    assert result.returncode == 1
    assert 'database "no_such_database_zipflow" does not exist' in one_line(result)


def test_a_sqlite_store_that_cannot_be_created_is_one_line(zipflow, tmp_path):
    (tmp_path / "file").write_text("in the way")
    url = f"sqlite:///{tmp_path / 'file' / 'zipflow.db'}"
    result = zipflow(
        "process", str(users_zip(tmp_path / "a.zip", ["1"])), env={"ZIPFLOW_DATABASE_URL": url}
    )
    assert result.returncode == 1
    assert one_line(result).startswith(f"zipflow process: cannot create the store {url}")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "out",
            "zipflow demo-data: out is a directory; name the archive to write, such as out/users.zip",
        ),
        (
            "missing/users.zip",
            "zipflow demo-data: the folder missing does not exist; create it or name another",
        ),
    ],
)
def test_demo_data_to_a_folder_or_into_a_missing_one_is_one_line(
    zipflow, tmp_path, target, message
):
    (tmp_path / "out").mkdir()
    result = zipflow("demo-data", target, "--users", "5")
    assert (result.returncode, one_line(result)) == (2, message)
    assert list((tmp_path / "out").iterdir()) == []


def test_process_of_a_folder_is_one_line(zipflow, tmp_path):
    result = zipflow("process", str(tmp_path))
    assert (result.returncode, one_line(result)) == (
        2,
        f"zipflow process: {tmp_path} is a directory; give a .zip file",
    )


@pytest.mark.parametrize(
    ("args", "feature"),
    [
        (["worker"], "zipflow worker"),
        (["setup"], "zipflow setup"),
        (["reprocess"], "zipflow reprocess"),
        (["upload", "a.zip"], "zipflow upload"),
    ],
)
def test_commands_that_need_minio_say_so_without_it(zipflow, tmp_path, args, feature):
    users_zip(tmp_path / "a.zip", ["1"])
    result = zipflow(*args)
    assert result.returncode == 2
    assert one_line(result) == (
        f"zipflow {args[0]}: {feature} needs MinIO and RabbitMQ, and this process uses the"
        f" local directory {tmp_path / 'data'} instead: set ZIPFLOW_S3_ACCESS_KEY and"
        " ZIPFLOW_S3_SECRET_KEY (see docs/configuration.md), or load a local zip with"
        " `zipflow process`"
    )


def test_an_upload_to_an_unreachable_minio_is_one_line_and_never_shows_100_percent(
    zipflow, tmp_path
):
    users_zip(tmp_path / "a.zip", ["1"])
    endpoint = f"127.0.0.1:{free_port()}"
    result = zipflow(
        "upload",
        "a.zip",
        env={
            "ZIPFLOW_S3_ENDPOINT": endpoint,
            "ZIPFLOW_S3_ACCESS_KEY": "key",
            "ZIPFLOW_S3_SECRET_KEY": "secret",
        },
    )
    assert result.returncode == 1
    assert "100%" not in result.stderr
    assert one_line(result).startswith(f"zipflow upload: cannot reach MinIO at {endpoint}:")


def test_the_upload_bar_reaches_the_end_only_once_minio_confirms():
    from worker.cli import UploadProgress

    progress = UploadProgress()
    progress.set_meta("a.zip", 1000)
    progress.update(600)
    progress.update(400)  # the SDK has read everything; MinIO has not answered yet
    assert progress.bar.n == 999
    progress.finish()
    assert progress.bar.n == 1000
    progress.close()


def test_api_on_a_port_in_use_is_one_line(zipflow):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = zipflow("api", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"zipflow api: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (another server there? pick another --port)"
    )
    assert "Traceback" not in result.stderr


def ready(port: int) -> int | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/ready")
        return connection.getresponse().status
    except OSError:
        return None


def wait_for_status(port: int, status: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while ready(port) != status:
        assert time.monotonic() < deadline, f"/ready never answered {status}"
        time.sleep(0.2)


@pytest.fixture
def store_port() -> int:
    if not POSTGRES_URL:
        pytest.skip("ZIPFLOW_TEST_POSTGRES_URL is not set")
    return free_port()


def test_api_started_while_the_store_is_down_serves_503_until_it_answers(
    store_port, tmp_path, database_url
):
    """The store comes back empty (a fresh schema): the API creates the schema, then is ready."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a store server that is down is PostgreSQL's case")
    url = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{store_port}")
    assert url != database_url, "the test expects ZIPFLOW_TEST_POSTGRES_URL on 127.0.0.1:5432"
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "zipflow", "api", "--port", str(port)],
        env={**os.environ, **NO_MINIO, "ZIPFLOW_DATABASE_URL": url},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_status(port, 503)
        proxy = SlowProxy("127.0.0.1:5432", delay=0, port=store_port)  # the store is back
        wait_for_status(port, 200)
        proxy.close()
    finally:
        api.terminate()
        log = api.communicate(timeout=10)[1]
    assert "serving anyway, /ready answers 503 until the store answers" in log
    assert "the store answers now" in log
    assert "Traceback" not in log


def test_a_bug_prints_its_traceback_and_where_to_report_it(capsys):
    def broken(args: argparse.Namespace, settings: object) -> int:
        raise RuntimeError("an unforeseen state")

    status = run_entry_point(argparse.ArgumentParser(prog="zipflow"), broken, [])
    err = capsys.readouterr().err
    assert status == EXIT_BUG
    assert "Traceback" in err and "RuntimeError: an unforeseen state" in err
    assert err.strip().splitlines()[-1] == f"zipflow: {BUG_REPORT}"


def test_help_is_written_for_users_and_version_is_known(zipflow):
    help_text = zipflow("--help").stdout
    assert "composition root" not in help_text
    for command in ("process", "demo-data", "worker", "setup", "upload", "reprocess", "api"):
        assert any(
            line.split()[:1] == [command] and len(line.split()) > 1
            for line in help_text.splitlines()
        ), command
    assert "examples:" in help_text and help_text.count("zipflow process users.zip") == 2
    version = zipflow("--version")
    assert (version.returncode, version.stdout.strip()) == (0, "zipflow 0.1.0")


@pytest.mark.parametrize(
    "command", ["process", "demo-data", "worker", "setup", "upload", "reprocess", "api"]
)
def test_every_option_of_every_command_has_help(command):
    from zipflow.cli import build_parser

    parser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in parser._actions:
        assert action.help, f"zipflow {command} {action.option_strings or action.dest} has no help"


def test_api_says_which_store_object_store_and_broker_it_uses_and_warns_when_empty(tmp_path):
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "zipflow", "api", "--port", str(port)],
        env={
            **os.environ,
            **NO_MINIO,
            "ZIPFLOW_DATABASE_URL": "sqlite:///data/zipflow.db",
            "ZIPFLOW_DATA_DIR": "data",
            "ZIPFLOW_AMQP_URL": "amqp://zipflow:secret@localhost:5672/%2F",
        },
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_status(port, 200)
    finally:
        api.terminate()
        log = api.communicate(timeout=10)[1]
    store = tmp_path / "data" / "zipflow.db"
    assert f"store: the SQLite store {store}" in log
    assert f"object store: the local directory {tmp_path / 'data' / 'processed'} (no MinIO" in log
    assert "broker: amqp://zipflow:***@localhost:5672/%2F" in log and "secret" not in log
    assert f"the SQLite store {store} holds no users yet" in log
    assert "relative to the folder the API was started in" in log


def test_a_bad_storage_choice_is_one_line(zipflow):
    result = zipflow("api", env={"ZIPFLOW_STORAGE": "s3"})
    assert (result.returncode, one_line(result)) == (
        2,
        "zipflow api: ZIPFLOW_STORAGE must be one of auto, local, minio, not 's3'",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ZIPFLOW_AMQP_URL", "localhost", "ZIPFLOW_AMQP_URL 'localhost' is not a RabbitMQ URL"),
        (
            "ZIPFLOW_AMQP_URL",
            "amqp://guest:secret@localhost:port/",
            "ZIPFLOW_AMQP_URL 'amqp://guest:***@localhost:port/' is not a RabbitMQ URL",
        ),
        (
            "ZIPFLOW_S3_ENDPOINT",
            "http://localhost:9000",
            "ZIPFLOW_S3_ENDPOINT must be host or host:port, such as localhost:9000, not"
            " 'http://localhost:9000'",
        ),
    ],
)
def test_broker_and_minio_addresses_of_the_wrong_shape_are_one_line(
    zipflow, variable, value, message
):
    result = zipflow("setup", env={variable: value, "ZIPFLOW_S3_ACCESS_KEY": "key"})
    assert result.returncode == 2
    assert one_line(result).startswith(f"zipflow setup: {message}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "argument --port: '99999' is not a port from 1 to 65535"),
        (
            ["--host", "nohost.invalid"],
            "cannot listen on nohost.invalid:8000: the host is not an address or name of this machine",
        ),
    ],
)
def test_api_with_an_impossible_address_is_one_line(zipflow, args, message):
    result = zipflow("api", *args)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_process_with_minio_unreachable_is_one_line_and_the_store_unchanged(zipflow, tmp_path):
    archive = users_zip(tmp_path / "a.zip", ["1"], images=("1",))
    result = zipflow(
        "process",
        str(archive),
        env={
            "ZIPFLOW_S3_ENDPOINT": f"127.0.0.1:{free_port()}",
            "ZIPFLOW_S3_ACCESS_KEY": "key",
            "ZIPFLOW_S3_SECRET_KEY": "secret",
        },
    )
    assert result.returncode == 1
    assert one_line(result).startswith("zipflow process: failed, the store is unchanged: ")
    with sqlite3.connect(tmp_path / "zipflow.db") as connection:
        assert connection.execute("SELECT count(*) FROM app_user").fetchone() == (0,)
        assert connection.execute("SELECT status FROM run").fetchall() == [("failed",)]
