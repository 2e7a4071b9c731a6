"""The worker fed exactly what MinIO publishes (tests/minio_events.py), through the real broker.

Each test uploads to moto, publishes the body, headers and routing key MinIO's AMQP target
would for that upload, and checks the run it causes.
"""

import os
import time
from dataclasses import replace
from datetime import timedelta

import pika
import pytest
from test_worker_consumer import BIRTH, finished_runs, queue_depths, runs, user_names
from worker_support import event_for, upload_zip, write_zip

from shared.storage import MinioStore, SourceBucket
from tests.minio_events import CONTENT_NAMES, METADATA_NAMES, minio_body, publish_as_minio
from worker.handler import Handler


@pytest.mark.parametrize(
    "key",
    [
        "drops/02-src-data 2.zip",
        "a+b=c&d.zip",
        "données/Łódź 名前 (final).zip",
        "weird <quoted> 'name'.zip",
    ],
)
def test_keys_minio_escapes_are_loaded_under_their_own_name(
    tmp_path, settings, minio, broker, start_worker, key
):
    worker = start_worker(settings)
    body = event_for(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), key
    )
    publish_as_minio(broker, settings, body)

    [run] = finished_runs(1)
    assert run.status == "succeeded", run.error
    assert run.source == f"{settings.source_bucket}/{key}"
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


@pytest.mark.parametrize("key", ["users.zip", "USERS.ZIP", "Users.Zip"])
def test_every_casing_of_zip_is_loaded(tmp_path, settings, minio, broker, start_worker, key):
    start_worker(settings)
    body = event_for(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), key
    )
    publish_as_minio(broker, settings, body)

    [run] = finished_runs(1)
    assert (run.status, run.source) == ("succeeded", f"{settings.source_bucket}/{key}")


def test_a_multipart_upload_is_loaded_from_its_complete_event(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(settings)
    path = tmp_path / "big.zip"
    # Random bytes do not compress: the zip spans two 5 MiB parts, as the SDK uploads it.
    write_zip(path, {"7": ("Big", "Zip", BIRTH)}, {"7": os.urandom(6 * 1024**2)})
    body = event_for(
        minio,
        settings,
        path,
        "big upload.zip",
        name="s3:ObjectCreated:CompleteMultipartUpload",
        part_size=5 * 1024**2,
    )
    assert b'-2","contentType"' in body, "a multipart etag ends in -<parts>"
    publish_as_minio(broker, settings, body)

    [run] = finished_runs(1)
    assert run.status == "succeeded", run.error
    assert run.etag.endswith("-2")
    assert user_names() == {"7": "Big"}


def test_each_metadata_only_event_is_acknowledged_without_a_run(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    worker = start_worker(settings)
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    for name in METADATA_NAMES:
        publish_as_minio(broker, settings, event_for(minio, settings, path, "a.zip", name=name))
    # One consumer with prefetch 1 takes messages in order: once this one is done, so are those.
    publish_as_minio(broker, settings, event_for(minio, settings, path, "b.zip"))

    [run] = finished_runs(1)
    assert run.source.endswith("/b.zip")
    worker.stop()
    assert len(runs()) == 1
    for name in METADATA_NAMES:
        assert f"{name} changes no content" in worker_logs.text
    assert queue_depths(broker, settings) == (0, 0)


def test_every_content_event_name_loads(tmp_path, settings, minio, broker, start_worker):
    start_worker(settings)
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    for index, name in enumerate(CONTENT_NAMES):
        publish_as_minio(
            broker, settings, event_for(minio, settings, path, f"{index}.zip", name=name)
        )

    assert [run.status for run in finished_runs(len(CONTENT_NAMES))] == ["succeeded"] * 4


@pytest.mark.parametrize(
    ("exchange_type", "routing_key"),
    [("fanout", ""), ("direct", ""), ("direct", "zipflow.objects"), ("topic", "minio.source")],
)
def test_each_exchange_type_routes_minios_events_to_the_worker(
    tmp_path, settings, minio, broker, start_worker, exchange_type, routing_key
):
    settings = replace(settings, exchange_type=exchange_type, routing_key=routing_key)
    worker = start_worker(settings)
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    publish_as_minio(broker, settings, event_for(minio, settings, path, "a.zip"))

    [run] = finished_runs(1)
    assert run.status == "succeeded", run.error
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


@pytest.mark.parametrize("exchange_type", ["direct", "topic"])
def test_a_routing_key_other_than_the_bound_one_reaches_no_queue(
    tmp_path, settings, minio, broker, start_worker, exchange_type
):
    # Why compose must give MinIO and the worker the same key: RabbitMQ drops the rest.
    settings = replace(settings, exchange_type=exchange_type, routing_key="zipflow")
    worker = start_worker(settings)
    path = write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)})
    broker.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        body = event_for(minio, settings, path, "a.zip")
        broker.basic_publish(settings.exchange, "other", body, mandatory=True)
    worker.stop()
    assert runs() == []


def same_second_pair(minio, settings, tmp_path) -> tuple[bytes, bytes]:
    """Upload an older and a newer zip within one second; their MinIO bodies, older first.

    HEAD shows whole seconds, so only the sequencers tell the two apart. moto keeps no
    time finer than the second, so the sequencers carry the sub-second part MinIO would
    (100 and 200 ms into the second). Uploads that straddle a second are made again.
    """
    older = write_zip(
        tmp_path / "old.zip", {"1": ("Old", "One", BIRTH), "3": ("Only", "Old", BIRTH)}
    )
    newer = write_zip(tmp_path / "new.zip", {"1": ("New", "One", BIRTH)})
    bucket = settings.source_bucket
    for _ in range(20):
        etag_a, size_a, _ = upload_zip(minio, settings, older, "old.zip")
        etag_b, size_b, _ = upload_zip(minio, settings, newer, "new.zip")
        second_a = minio.stat_object(bucket, "old.zip").last_modified
        second_b = minio.stat_object(bucket, "new.zip").last_modified
        if second_a == second_b:
            return (
                minio_body(
                    bucket, "old.zip", etag_a, size_a, second_a + timedelta(milliseconds=100)
                ),
                minio_body(
                    bucket, "new.zip", etag_b, size_b, second_b + timedelta(milliseconds=200)
                ),
            )
    raise AssertionError("could not upload two zips within one second")


def test_same_second_pair_with_the_newer_event_first_keeps_the_newer_in_snapshot_mode(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(settings)
    older, newer = same_second_pair(minio, settings, tmp_path)
    publish_as_minio(broker, settings, newer)
    publish_as_minio(broker, settings, older)

    loaded, stale = finished_runs(2)
    assert (loaded.status, loaded.source) == ("succeeded", f"{settings.source_bucket}/new.zip")
    assert stale.status == "skipped"
    assert stale.note.startswith("older (modified ")
    assert user_names() == {"1": "New"}


def test_same_second_pair_with_the_newer_event_first_keeps_the_newer_rows_in_merge_mode(
    tmp_path, settings, minio, broker, start_worker
):
    start_worker(replace(settings, mode="merge"))
    older, newer = same_second_pair(minio, settings, tmp_path)
    publish_as_minio(broker, settings, newer)
    publish_as_minio(broker, settings, older)

    first, second = finished_runs(2)
    assert [first.status, second.status] == ["succeeded", "succeeded"]
    assert second.kept_newer == 1
    assert user_names() == {"1": "New", "3": "Only"}


def test_a_sweep_after_a_wrongly_ordered_pair_loads_the_newest_again(
    tmp_path, settings, minio, broker, start_worker
):
    # The older zip loaded after the newer, as the worker did before versions had
    # nanoseconds: the newer was "processed", but the store shows the older.
    for key, user in (("old.zip", "Old"), ("new.zip", "New")):
        upload_zip(minio, settings, write_zip(tmp_path / key, {"1": (user, "One", BIRTH)}), key)
        time.sleep(1.1)  # moto's listing has whole seconds: keep the two apart
    handler = Handler(
        settings,
        SourceBucket(minio, settings.source_bucket),
        MinioStore(minio, settings.processed_bucket),
    )
    for key in ("new.zip", "old.zip"):
        obj = handler.source.listed(key)
        assert handler.load(obj, key, "event").status == "succeeded"
    assert user_names() == {"1": "Old"}

    start_worker(replace(settings, reconcile_seconds=300))
    runs_now = finished_runs(3)
    assert (runs_now[2].trigger, runs_now[2].status) == ("reconcile", "succeeded")
    assert runs_now[2].source == f"{settings.source_bucket}/new.zip"
    assert user_names() == {"1": "New"}
