"""The worker's subcommands, parsed by the real `zipflow` parser and given the test's settings."""

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from minio import Minio
from worker_support import take_message, write_zip

from shared.config import Settings
from shared.messages import REPROCESS_TYPE
from shared.models import Run
from zipflow.cli import build_parser

BIRTH = 631_152_000_000


def zipflow(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.handler(args, settings)


def test_setup_declares_the_topology_and_creates_the_buckets(settings, broker, capsys):
    assert zipflow(settings, "setup") == 0
    assert zipflow(settings, "setup") == 0, "setup must be safe to run again"

    client = Minio(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, secure=False
    )
    assert client.bucket_exists(settings.source_bucket)
    assert client.bucket_exists(settings.processed_bucket)
    # Declared as MinIO declares it: a fanout, durable redeclaration is accepted...
    broker.exchange_declare(settings.exchange, exchange_type="fanout", durable=True)
    # ...and the queue is bound, so a publish to the exchange lands in it.
    broker.basic_publish(settings.exchange, "", b'{"Records": []}')
    assert take_message(broker, settings.queue)[1] == b'{"Records": []}'
    assert (
        f"exchange {settings.exchange} (fanout) -> queue {settings.queue}"
        in capsys.readouterr().out
    )


def test_setup_explains_an_exchange_declared_differently(settings, broker, capsys):
    broker.exchange_declare(settings.exchange, exchange_type="direct", durable=True)
    assert zipflow(settings, "setup") == 1
    error = capsys.readouterr().err
    assert "ZIPFLOW_EXCHANGE_TYPE" in error
    assert "inequivalent arg 'type'" in error


def test_setup_says_when_rabbitmq_is_unreachable(settings, capsys):
    unreachable = replace(settings, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F")
    assert zipflow(unreachable, "setup") == 1
    assert "cannot reach RabbitMQ (ZIPFLOW_AMQP_URL)" in capsys.readouterr().err


def test_upload_puts_the_file_under_its_name_or_the_given_key(tmp_path, settings, minio, capfd):
    path = write_zip(tmp_path / "users.zip", {"1": ("Ann", "Lee", BIRTH)})
    assert zipflow(settings, "upload", str(path)) == 0
    assert zipflow(settings, "upload", str(path), "--key", "drops/with space.zip") == 0

    assert minio.stat_object(settings.source_bucket, "users.zip").size == path.stat().st_size
    assert (
        minio.stat_object(settings.source_bucket, "drops/with space.zip").size
        == path.stat().st_size
    )
    out, err = capfd.readouterr()
    assert f"uploaded {settings.source_bucket}/drops/with space.zip" in out
    assert "100%" in err, "tqdm's progress bar goes to stderr"


def test_upload_refuses_what_the_worker_would_ignore(tmp_path, settings, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert zipflow(settings, "upload", str(notes)) == 2
    assert "only processes .zip keys" in capsys.readouterr().err
    assert zipflow(settings, "upload", str(tmp_path / "missing.zip")) == 2
    assert "is not a file" in capsys.readouterr().err


def test_reprocess_queues_a_run_for_the_newest_zip_and_publishes_the_command(
    tmp_path, settings, minio, broker, db, capsys
):
    assert zipflow(settings, "setup") == 0
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    minio.fput_object(settings.source_bucket, "older.zip", str(path))
    time.sleep(1.1)  # S3 last-modified times have whole seconds
    minio.fput_object(settings.source_bucket, "newest one.zip", str(path))

    assert zipflow(settings, "reprocess") == 0

    [run] = Run.select()
    assert (run.status, run.trigger) == ("queued", "reprocess")
    assert run.source == f"{settings.source_bucket}/newest one.zip"
    properties, body = take_message(broker, settings.queue)
    assert properties.type == REPROCESS_TYPE
    assert json.loads(body) == {"command": "reprocess", "run_id": run.id, "key": "newest one.zip"}
    assert f"queued run {run.id}" in capsys.readouterr().out


def test_reprocess_names_a_missing_key(settings, minio, db, capsys):
    assert zipflow(settings, "reprocess", "--key", "nope.zip") == 1
    assert "'nope.zip' in bucket" in capsys.readouterr().err
    assert Run.select().count() == 0


def test_reprocess_without_a_queue_fails_the_run_it_queued(tmp_path, settings, minio, db, capsys):
    minio.fput_object(
        settings.source_bucket,
        "a.zip",
        str(write_zip(tmp_path / "a.zip", {"1": ("A", "B", BIRTH)})),
    )
    assert zipflow(settings, "reprocess", "--key", "a.zip") == 1
    [run] = Run.select()
    assert run.status == "failed"
    assert "run `zipflow setup`" in run.error
    assert "does not exist" in capsys.readouterr().err


def test_worker_check_reports_whether_a_worker_consumes(settings, broker, start_worker, capsys):
    assert zipflow(settings, "worker", "--check") == 1
    assert "does not exist" in capsys.readouterr().err
    assert zipflow(settings, "setup") == 0
    assert zipflow(settings, "worker", "--check") == 1
    assert "no worker consumes" in capsys.readouterr().err

    start_worker(settings)
    assert zipflow(settings, "worker", "--check") == 0
    assert "1 consumer(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["worker", "--help"], ["upload", "--help"], ["reprocess", "--help"]]
)
def test_subcommands_are_registered(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    assert "usage: zipflow " + argv[0] in capsys.readouterr().out


def test_python_m_worker_reads_its_settings_from_the_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker"],
        env={"ZIPFLOW_MAX_DELIVERIES": "many", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ZIPFLOW_MAX_DELIVERIES must be a whole number" in result.stderr
