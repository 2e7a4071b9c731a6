"""POST /data against the real broker and S3 endpoint: reprocess commands and zip uploads."""

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from falcon.testing import TestClient
from minio import Minio
from sample_people import SOURCE_KEY, build_archive

from api.resources import MAX_JSON_BODY_BYTES
from shared.config import Settings
from shared.messages import REPROCESS_TYPE
from shared.models import Run
from shared.storage import SourceBucket

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the broker and bucket side is the same on either database."""
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@pytest.fixture
def channel(settings: Settings) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A channel on the real broker, with this test's worker queue declared (and deleted after)."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.queue_declare(settings.queue, durable=True)
    yield channel
    channel.queue_delete(settings.queue)
    connection.close()


def take_message(channel, settings: Settings) -> tuple[dict, pika.BasicProperties]:
    method, properties, body = channel.basic_get(settings.queue, auto_ack=True)
    assert method is not None, "no message in the worker's queue"
    return json.loads(body), properties


def queue_is_empty(channel, settings: Settings) -> bool:
    return channel.queue_declare(settings.queue, passive=True).method.message_count == 0


def test_reprocess_newest_zip_queues_a_run_and_commands_the_worker(
    client: TestClient, channel, settings: Settings
) -> None:
    result = client.simulate_post("/data")
    assert result.status_code == 202
    run_id = result.json["run_id"]
    assert result.headers["location"] == f"/runs/{run_id}"
    assert result.json == {
        "run_id": run_id,
        "status": "queued",
        "source": f"{settings.source_bucket}/{SOURCE_KEY}",
    }
    body, properties = take_message(channel, settings)
    assert body == {"command": "reprocess", "run_id": run_id, "key": SOURCE_KEY}
    assert properties.type == REPROCESS_TYPE
    run = Run.get_by_id(run_id)
    assert (run.status, run.trigger) == ("queued", "reprocess")
    assert client.simulate_get(result.headers["location"]).json["status"] == "queued"


def test_reprocess_a_named_key(
    client: TestClient, channel, settings: Settings, minio: Minio
) -> None:
    SourceBucket(minio, settings.source_bucket).upload(io.BytesIO(b"PK older"), "old/a.zip", 8)
    result = client.simulate_post("/data", json={"key": "old/a.zip"})
    assert result.status_code == 202
    body, _ = take_message(channel, settings)
    assert body["key"] == "old/a.zip"
    assert body["run_id"] == result.json["run_id"]


@pytest.mark.parametrize("content_type", ["Application/JSON", "APPLICATION/JSON; Charset=UTF-8"])
def test_the_json_media_type_is_matched_in_any_case(
    client: TestClient, channel, settings: Settings, content_type: str
) -> None:
    result = client.simulate_post(
        "/data", body=json.dumps({"key": SOURCE_KEY}), headers={"Content-Type": content_type}
    )
    assert result.status_code == 202, result.text
    body, _ = take_message(channel, settings)
    assert body["key"] == SOURCE_KEY


def test_a_query_parameter_is_a_400_and_queues_nothing(
    client: TestClient, channel, settings: Settings
) -> None:
    # Ignored, ?key= would reprocess the newest zip instead of the one asked for.
    runs_before = Run.select().count()
    result = client.simulate_post("/data", query_string="key=old/a.zip")
    assert result.status_code == 400
    assert result.json["parameter"] == "key"
    assert Run.select().count() == runs_before
    assert queue_is_empty(channel, settings)


def test_reprocess_of_a_missing_key_is_404_and_queues_nothing(
    client: TestClient, channel, settings: Settings
) -> None:
    runs_before = Run.select().count()
    result = client.simulate_post("/data", json={"key": "no/such.zip"})
    assert result.status_code == 404
    assert "no/such.zip" in result.json["description"]
    assert Run.select().count() == runs_before
    assert queue_is_empty(channel, settings)


def test_reprocess_with_no_zip_in_the_bucket_is_409(
    make_client: ClientFactory, store_db, channel, minio
) -> None:
    result = make_client().simulate_post("/data")
    assert result.status_code == 409
    assert "holds no .zip" in result.json["description"]
    assert Run.select().count() == 0


def test_broker_refusal_is_503_and_the_run_is_marked_failed(
    client: TestClient, settings: Settings
) -> None:
    # No channel fixture: the worker queue does not exist, so the mandatory publish bounces.
    result = client.simulate_post("/data")
    assert result.status_code == 503
    assert settings.queue in result.json["description"]
    failed = Run.select().where(Run.trigger == "reprocess").get()
    assert failed.status == "failed"
    assert settings.queue in failed.error


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        (b"{not json", "body"),
        (b"[" * 10_000, "body"),  # deep enough for RecursionError, within the size limit
        (b'{"key": ' + b"1" * 5000 + b"}", "body"),
        (b"[1, 2]", "body"),
        (b"null", "body"),
        (b'{"key": 5}', "key"),
        (b'{"key": ""}', "key"),
        (b'{"key": null}', "key"),
        (b'{"key": "a.zip", "bucket": "other"}', "bucket"),
        (b'{"key": "a\\u0000b"}', "key"),
    ],
)
def test_bad_reprocess_body_is_a_400_naming_it(
    client: TestClient, body: bytes, parameter: str
) -> None:
    result = client.simulate_post("/data", body=body, headers={"Content-Type": "application/json"})
    assert result.status_code == 400
    assert result.json["parameter"] == parameter


def test_a_json_body_over_the_limit_is_413_and_queues_nothing(client: TestClient) -> None:
    body = b'{"key": "a.zip", "pad": "' + b"x" * MAX_JSON_BODY_BYTES + b'"}'
    result = client.simulate_post("/data", body=body, headers={"Content-Type": "application/json"})
    assert result.status_code == 413
    assert str(MAX_JSON_BODY_BYTES) in result.json["description"]
    assert Run.select().where(Run.trigger == "reprocess").count() == 0


def test_other_body_types_are_415(client: TestClient) -> None:
    result = client.simulate_post("/data", body=b"hello", headers={"Content-Type": "text/plain"})
    assert result.status_code == 415


def test_zip_body_is_stored_in_the_source_bucket(
    make_client: ClientFactory, store_db, settings: Settings, minio: Minio
) -> None:
    data = build_archive()
    result = make_client().simulate_post(
        "/data", body=data, headers={"Content-Type": "application/zip"}
    )
    assert result.status_code == 202
    key = result.json["key"]
    assert key.startswith("uploads/") and key.endswith(".zip")
    assert result.json["bucket"] == settings.source_bucket
    assert result.json["size"] == len(data)
    stored = minio.get_object(settings.source_bucket, key)
    try:
        assert stored.read() == data
        assert stored.headers["Content-Type"] == "application/zip"
    finally:
        stored.close()
        stored.release_conn()
    # The bucket notification makes the run, not the API.
    assert Run.select().count() == 0


def test_zip_over_the_limit_is_413_and_stores_nothing(
    make_client: ClientFactory, store_db, settings: Settings, minio: Minio
) -> None:
    small = replace(settings, api_max_upload_bytes=100)
    result = make_client(app_settings=small).simulate_post(
        "/data", body=b"PK" + b"\x00" * 200, headers={"Content-Type": "application/zip"}
    )
    assert result.status_code == 413
    assert "ZIPFLOW_API_MAX_UPLOAD_BYTES" in result.json["description"]
    assert list(minio.list_objects(settings.source_bucket, recursive=True)) == []


def test_empty_zip_body_is_a_400(make_client: ClientFactory, store_db) -> None:
    result = make_client().simulate_post(
        "/data", body=b"", headers={"Content-Type": "application/zip", "Content-Length": "0"}
    )
    assert result.status_code == 400
    assert result.json["parameter"] == "body"


def test_token_guards_post_and_leaves_reads_open(
    make_client: ClientFactory, loaded, channel, token_settings: Settings
) -> None:
    client = make_client(app_settings=token_settings)
    missing = client.simulate_post("/data")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.simulate_post("/data", headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status_code == 401
    basic = client.simulate_post("/data", headers={"Authorization": "Basic czNjcmV0LXRva2Vu"})
    assert basic.status_code == 401
    upload = client.simulate_post(
        "/data", body=b"PK\x03\x04", headers={"Content-Type": "application/zip"}
    )
    assert upload.status_code == 401
    assert queue_is_empty(channel, token_settings)
    right = client.simulate_post("/data", headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 202
    take_message(channel, token_settings)
    assert client.simulate_get("/data").status_code == 200
    assert client.simulate_get("/stats").status_code == 200
