"""The worker end to end, in-process: real RabbitMQ, moto's S3 server, a SQLite store.

Each test publishes the notification MinIO would send, waits for the run it causes, then
stops the worker and checks the queues: a message the worker acknowledged is gone, one it
left unacknowledged would be back in the queue once its connection closed.
"""

import os
import random
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pika
from minio import Minio
from moto.server import ThreadedMotoServer
from worker_support import (
    SlowProxy,
    minio_event,
    publish_event,
    upload_zip,
    wait_for,
    write_zip,
)

from shared.config import OUTPUT_KEY, Settings
from shared.demo import demo_png, write_demo_archive
from shared.messages import REPROCESS_TYPE, publish_reprocess
from shared.models import Run, User, queue_run
from shared.storage import MinioStore

PNG_1 = demo_png(random.Random(1))

BIRTH = 631_152_000_000  # 1990-01-01


def upload(minio: Minio, settings: Settings, path: Path, key: str, part_size: int = 0) -> str:
    """Put a file into the source bucket and return its etag."""
    return upload_zip(minio, settings, path, key, part_size)[0]


def runs() -> list[Run]:
    return list(Run.select().order_by(Run.id))


def finished_runs(count: int, timeout: float = 15.0) -> list[Run]:
    """Wait until `count` runs have an outcome, and return all runs."""
    done = ("succeeded", "failed", "skipped")
    wait_for(
        lambda: Run.select().where(Run.status.in_(done)).count() >= count,
        timeout=timeout,
        what=f"{count} finished runs",
    )
    return runs()


def queue_depths(
    channel: pika.adapters.blocking_connection.BlockingChannel, settings: Settings
) -> tuple[int, int]:
    """(work queue, dead letters) message counts, with no consumer holding any."""
    work = channel.queue_declare(settings.queue, passive=True).method.message_count
    dead = channel.queue_declare(settings.dead_letter, passive=True).method.message_count
    return work, dead


def user_names() -> dict[str, str]:
    return {u.user_id: u.first_name for u in User.select()}


def test_key_with_spaces_is_processed_and_acknowledged(
    tmp_path, settings, minio, broker, start_worker
):
    worker = start_worker(settings)
    path = write_zip(
        tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH), "2": ("Bo", "Ek", BIRTH)}, {"1": PNG_1}
    )
    etag = upload(minio, settings, path, "drops/02-src-data 2.zip")
    publish_event(
        broker, settings, minio_event(settings.source_bucket, "drops/02-src-data 2.zip", etag)
    )

    [run] = finished_runs(1)
    assert run.status == "succeeded", run.error
    assert run.source == f"{settings.source_bucket}/drops/02-src-data 2.zip"
    assert run.etag == etag
    assert run.trigger == "event"
    assert user_names() == {"1": "Ann", "2": "Bo"}
    output = minio.get_object(settings.processed_bucket, OUTPUT_KEY).read().decode()
    assert "Ann" in output and "Bo" in output
    assert minio.get_object(settings.processed_bucket, "images/1.png").read() == PNG_1
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_multipart_upload_event_is_processed(tmp_path, settings, minio, broker, start_worker):
    start_worker(settings)
    path = tmp_path / "big.zip"
    # An incompressible image makes the zip span two 5 MiB parts.
    write_zip(path, {"7": ("Big", "Zip", BIRTH)}, {"7": os.urandom(6 * 1024 * 1024)})
    etag = upload(minio, settings, path, "big upload.zip", part_size=5 * 1024 * 1024)
    assert etag.endswith("-2"), "the upload should have been multipart"
    body = minio_event(
        settings.source_bucket,
        "big upload.zip",
        etag,
        path.stat().st_size,
        "s3:ObjectCreated:CompleteMultipartUpload",
    )
    publish_event(broker, settings, body)

    [run] = finished_runs(1)
    assert run.status == "succeeded", run.error
    assert user_names() == {"7": "Big"}


def test_duplicate_event_is_skipped_and_recorded(tmp_path, settings, minio, broker, start_worker):
    worker = start_worker(settings)
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    body = minio_event(settings.source_bucket, "a.zip", etag)
    publish_event(broker, settings, body)
    publish_event(broker, settings, body)

    first, second = finished_runs(2)
    assert first.status == "succeeded"
    assert second.status == "skipped"
    assert second.note == f"already processed by run {first.id} (succeeded)"
    assert User.select().count() == 1
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_reupload_of_the_same_bytes_is_a_new_version(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(settings)
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    etag = upload(minio, settings, path, "a.zip")
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))
    finished_runs(1)
    time.sleep(1.1)  # S3 last-modified times have whole seconds
    assert upload(minio, settings, path, "a.zip") == etag
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))

    first, second = finished_runs(2)
    assert [first.status, second.status] == ["succeeded", "succeeded"]
    assert second.source_modified > first.source_modified


def test_older_zip_after_newer_is_skipped_as_stale(tmp_path, settings, minio, broker, start_worker):
    worker = start_worker(settings)
    old_etag = upload(
        minio, settings, write_zip(tmp_path / "old.zip", {"1": ("Old", "One", BIRTH)}), "old.zip"
    )
    time.sleep(1.1)  # S3 last-modified times have whole seconds
    new_etag = upload(
        minio, settings, write_zip(tmp_path / "new.zip", {"2": ("New", "Two", BIRTH)}), "new.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "new.zip", new_etag))
    publish_event(broker, settings, minio_event(settings.source_bucket, "old.zip", old_etag))

    newer, older = finished_runs(2)
    assert newer.status == "succeeded"
    assert older.status == "skipped"
    assert older.note.startswith("older (modified ")
    assert f"loaded by run {newer.id}" in older.note
    assert user_names() == {"2": "New"}
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_merge_mode_loads_an_older_zip_without_overwriting_newer_rows(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(replace(settings, mode="merge"))
    old = write_zip(tmp_path / "old.zip", {"1": ("Old", "One", BIRTH), "3": ("Only", "Old", BIRTH)})
    old_etag = upload(minio, settings, old, "old.zip")
    time.sleep(1.1)
    new_etag = upload(
        minio, settings, write_zip(tmp_path / "new.zip", {"1": ("New", "One", BIRTH)}), "new.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "new.zip", new_etag))
    publish_event(broker, settings, minio_event(settings.source_bucket, "old.zip", old_etag))

    assert [run.status for run in finished_runs(2)] == ["succeeded", "succeeded"]
    assert user_names() == {"1": "New", "3": "Only"}


def test_events_that_change_no_zip_are_acknowledged_without_a_run(
    tmp_path, settings, minio, broker, start_worker
):
    worker = start_worker(settings)
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    bucket = settings.source_bucket
    for body in (
        minio_event(bucket, "a.zip", etag, name="s3:ObjectCreated:PutTagging"),
        minio_event(bucket, "a.zip", etag, name="s3:ObjectCreated:PutRetention"),
        minio_event(bucket, "notes.txt", etag),
        minio_event(bucket, "folder/", None, 0),
        minio_event("some-other-bucket", "a.zip", etag),
    ):
        publish_event(broker, settings, body)
    # One consumer with prefetch 1 takes messages in order: once this one is done, so are those.
    publish_event(broker, settings, minio_event(bucket, "a.zip", etag))

    [run] = finished_runs(1)
    assert run.status == "succeeded"
    worker.stop()
    assert len(runs()) == 1
    assert queue_depths(broker, settings) == (0, 0)


def test_malformed_event_is_dead_lettered_at_once(settings, broker, start_worker, worker_logs):
    worker = start_worker(settings)
    publish_event(broker, settings, b'{"EventName": "s3:ObjectCreated:Put", "Records": "oops"}')

    wait_for(
        lambda: broker.queue_declare(settings.dead_letter, passive=True).method.message_count == 1,
        what="the dead letter",
    )
    _, properties, body = broker.basic_get(settings.dead_letter, auto_ack=True)
    assert body == b'{"EventName": "s3:ObjectCreated:Put", "Records": "oops"}'
    # The worker published it there itself, with why: RabbitMQ's UI shows the header.
    assert properties.headers["x-zipflow-error"] == 'malformed: body has no "Records" list'
    assert properties.headers["x-zipflow-deliveries"] == 1
    assert properties.headers["x-zipflow-dead-lettered-at"].endswith("Z")
    assert 'malformed: body has no "Records" list' in worker_logs.text
    worker.stop()
    assert runs() == []
    assert queue_depths(broker, settings) == (0, 0)


def test_bodies_json_cannot_parse_are_dead_lettered_at_once_and_the_worker_goes_on(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    # json.loads raises RecursionError on deep nesting and ValueError on a 5,000-digit
    # integer; either once stopped the worker on every delivery, and the queue stalled.
    worker = start_worker(settings)
    deep, huge = b"[" * 100_000, b'{"Records": [], "n": ' + b"1" * 5000 + b"}"
    publish_event(broker, settings, deep)
    publish_event(broker, settings, huge)
    for body in (deep, huge):
        broker.basic_publish(
            "", settings.queue, body, pika.BasicProperties(type=REPROCESS_TYPE, delivery_mode=2)
        )
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))

    [run] = finished_runs(1)
    assert run.status == "succeeded"
    assert worker.consumer.processor.is_alive()
    worker.stop()
    assert queue_depths(broker, settings) == (0, 4)
    for _ in range(4):
        _, properties, _ = broker.basic_get(settings.dead_letter, auto_ack=True)
        assert properties.headers["x-zipflow-error"].startswith("malformed: ")
        assert properties.headers["x-zipflow-deliveries"] == 1
    assert worker_logs.text.count("malformed message -> dead-lettered: malformed:") == 4
    assert "maximum recursion depth exceeded" in worker_logs.text
    assert "Exceeds the limit (4300 digits)" in worker_logs.text


def test_corrupt_zip_fails_its_run_keeps_the_data_and_is_not_retried(
    tmp_path, settings, minio, broker, start_worker
):
    worker = start_worker(settings)
    good = upload(
        minio, settings, write_zip(tmp_path / "good.zip", {"1": ("Ann", "Lee", BIRTH)}), "good.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "good.zip", good))
    finished_runs(1)
    time.sleep(1.1)
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    bad = upload(minio, settings, corrupt, "corrupt.zip")
    body = minio_event(settings.source_bucket, "corrupt.zip", bad)
    publish_event(broker, settings, body)
    publish_event(broker, settings, body)

    _, failed, duplicate = finished_runs(3)
    assert failed.status == "failed"
    assert failed.error
    assert duplicate.status == "skipped"
    assert duplicate.note == f"already processed by run {failed.id} (failed)"
    assert user_names() == {"1": "Ann"}
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_reprocess_command_fills_the_queued_run_even_when_processed(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(settings)
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a b.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "a b.zip", etag))
    finished_runs(1)

    queued = queue_run(f"{settings.source_bucket}/a b.zip", "reprocess")
    publish_reprocess(settings, queued.id, "a b.zip")

    _, again = finished_runs(2)
    assert again.id == queued.id
    assert again.status == "succeeded", again.error
    assert again.trigger == "reprocess"
    assert again.etag == etag


class FailingStore(MinioStore):
    """The processed bucket, unreachable for its first `failures` uploads, as in a MinIO restart."""

    def __init__(self, minio: Minio, bucket: str, failures: int) -> None:
        super().__init__(minio, bucket)
        self.failures = failures

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("MinIO unreachable")
        super().put(key, data, content_type, version)


def test_reprocess_that_failed_transiently_is_retried_on_redelivery(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    start_worker(settings, FailingStore(minio, settings.processed_bucket, failures=1))
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}, {"1": PNG_1})
    upload(minio, settings, path, "a.zip")
    queued = queue_run(f"{settings.source_bucket}/a.zip", "reprocess")
    publish_reprocess(settings, queued.id, "a.zip")

    run = wait_for(
        lambda: Run.get_or_none(Run.id == queued.id, Run.status == "succeeded"),
        what="the retried reprocess",
    )
    assert "failed (delivery 1 of 3), retrying in" in worker_logs.text
    assert run.error is None
    assert user_names() == {"1": "Ann"}
    assert Run.select().count() == 1


def test_reprocess_that_keeps_failing_is_dead_lettered_at_the_delivery_limit(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    worker = start_worker(settings, FailingStore(minio, settings.processed_bucket, failures=99))
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}, {"1": PNG_1})
    upload(minio, settings, path, "a.zip")
    queued = queue_run(f"{settings.source_bucket}/a.zip", "reprocess")
    publish_reprocess(settings, queued.id, "a.zip")

    wait_for(
        lambda: broker.queue_declare(settings.dead_letter, passive=True).method.message_count == 1,
        what="the dead letter",
    )
    assert "failed (delivery 2 of 3), retrying in" in worker_logs.text
    assert "dead-lettered after 3 deliveries" in worker_logs.text
    assert Run.get_by_id(queued.id).error == "ConnectionError: MinIO unreachable"
    worker.stop()
    assert queue_depths(broker, settings) == (0, 1)


def test_reprocess_of_a_missing_key_is_recorded_as_skipped(settings, broker, start_worker):
    start_worker(settings)
    queued = queue_run(f"{settings.source_bucket}/gone.zip", "reprocess")
    publish_reprocess(settings, queued.id, "gone.zip")

    [run] = finished_runs(1)
    assert run.id == queued.id
    assert run.status == "skipped"
    assert run.note == "object no longer exists"


def test_reconcile_sweep_at_start_loads_a_zip_whose_event_was_lost(
    tmp_path, settings, minio, start_worker
):
    upload(
        minio, settings, write_zip(tmp_path / "old.zip", {"1": ("Old", "One", BIRTH)}), "old.zip"
    )
    time.sleep(1.1)
    etag = upload(
        minio, settings, write_zip(tmp_path / "new.zip", {"2": ("New", "Two", BIRTH)}), "new.zip"
    )
    start_worker(replace(settings, reconcile_seconds=300))

    [run] = finished_runs(1)
    assert run.trigger == "reconcile"
    assert run.status == "succeeded"
    assert run.etag == etag
    assert user_names() == {"2": "New"}


def test_reconcile_sweep_repeats_and_leaves_an_up_to_date_store_alone(
    tmp_path, settings, minio, start_worker
):
    start_worker(replace(settings, reconcile_seconds=1))
    time.sleep(1.5)  # one idle sweep over an empty bucket
    upload(minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip")

    [run] = finished_runs(1)
    assert run.trigger == "reconcile"
    time.sleep(2.5)  # two more sweeps find nothing new
    assert len(runs()) == 1


def test_minio_down_during_a_run_is_retried_until_it_succeeds(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    # moto keeps its buckets in the process, so a second server on its own port serves the
    # same data and can be stopped and started again like a MinIO restart.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    worker = start_worker(replace(settings, s3_endpoint=f"{host}:{port}", max_deliveries=5))
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    server.stop()
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))

    wait_for(lambda: "retrying in" in worker_logs.text, timeout=30, what="a retry")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        run = wait_for(
            lambda: Run.get_or_none(Run.status == "succeeded"), timeout=30, what="the load"
        )
        assert run.etag == etag
        assert user_names() == {"1": "Ann"}
        worker.stop()
    finally:
        server.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_transient_failure_is_dead_lettered_after_max_deliveries(
    settings, minio, broker, start_worker, worker_logs
):
    # The source bucket is gone: every attempt fails the same way until the limit.
    minio.remove_bucket(settings.source_bucket)
    worker = start_worker(replace(settings, max_deliveries=3))
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip"))

    wait_for(
        lambda: broker.queue_declare(settings.dead_letter, passive=True).method.message_count == 1,
        what="the dead letter",
    )
    assert "failed (delivery 1 of 3), retrying in" in worker_logs.text
    assert "failed (delivery 2 of 3), retrying in" in worker_logs.text
    assert "dead-lettered after 3 deliveries" in worker_logs.text
    assert "NoSuchBucket" in worker_logs.text
    worker.stop()
    assert queue_depths(broker, settings) == (0, 1)


def _worker_connections(settings: Settings) -> list[str]:
    """The broker's ids of the worker's connections, found by the name the worker gives them."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
    )
    marker = f'{{"connection_name","zipflow-worker {settings.queue}"}}'
    pids = [line.split("\t")[0] for line in listing.stdout.splitlines() if marker in line]
    assert pids, f"no connection named zipflow-worker {settings.queue}"
    return pids


def _close_connections(pids: list[str]) -> None:
    """Close connections from the broker's side, as a RabbitMQ restart would."""
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: closed by the broker"], check=True
        )


def test_worker_reconnects_after_the_broker_drops_its_connection(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    worker = start_worker(settings)
    _close_connections(_worker_connections(settings))
    wait_for(lambda: "RabbitMQ connection lost" in worker_logs.text, what="the lost connection")
    wait_for(lambda: worker.consumer.consuming.is_set(), what="the reconnection")

    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))
    [run] = finished_runs(1)
    assert run.status == "succeeded"
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_connection_dropped_mid_run_loses_nothing_and_loads_once(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    # S3 requests held at the proxy keep the load in progress while the broker drops the
    # connection, however long rabbitmqctl takes on a busy machine.
    proxy = SlowProxy(settings.s3_endpoint, delay=0.05)
    try:
        worker = start_worker(replace(settings, s3_endpoint=proxy.endpoint))
        connections = _worker_connections(settings)
        path = tmp_path / "a.zip"
        write_demo_archive(path, 100)
        etag = upload(minio, settings, path, "a.zip")
        publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))
        wait_for(lambda: Run.get_or_none(Run.status == "running"), what="the run in progress")
        proxy.hold()
        _close_connections(connections)
        assert Run.get(Run.status == "running"), "the load should still be in progress"
        proxy.release()

        loaded, repeat = finished_runs(2, timeout=30)
        assert loaded.status == "succeeded"
        assert repeat.status == "skipped"
        assert repeat.note == f"already processed by run {loaded.id} (succeeded)"
        assert User.select().count() == 100
        assert "RabbitMQ connection lost before the ack" in worker_logs.text
        worker.stop()
    finally:
        proxy.close()
    assert queue_depths(broker, settings) == (0, 0)


def test_an_archive_over_the_size_limit_fails_without_being_downloaded(
    tmp_path, settings, minio, broker, start_worker
):
    limits = replace(settings.limits, max_archive_bytes=100)
    start_worker(replace(settings, limits=limits))
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    etag = upload(minio, settings, path, "a.zip")
    body = minio_event(settings.source_bucket, "a.zip", etag)
    publish_event(broker, settings, body)
    publish_event(broker, settings, body)

    refused, duplicate = finished_runs(2)
    assert refused.status == "failed"
    assert refused.error == (
        f"the archive is {path.stat().st_size} bytes, over the limit of 100 (ZIPFLOW_MAX_ARCHIVE_BYTES)"
    )
    assert duplicate.status == "skipped"
    assert User.select().count() == 0
