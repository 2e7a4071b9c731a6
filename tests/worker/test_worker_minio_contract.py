"""The worker fed exactly what MinIO publishes (tests/minio_events.py), through the real broker.

Each test uploads to moto, publishes the body, headers and routing key MinIO's AMQP target
would for that upload, and checks the run it causes.
"""

import os
from dataclasses import replace

import pika
import pytest
from test_worker_consumer import BIRTH, finished_runs, queue_depths, runs, user_names
from worker_support import event_for, write_zip

from tests.minio_events import CONTENT_NAMES, METADATA_NAMES, publish_as_minio


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
