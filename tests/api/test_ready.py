"""/ready asks the store, the real broker and the S3 endpoint in parallel and says which is missing."""

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from falcon.testing import TestClient
from minio import Minio
from outages import closed_port, silent_listener

from shared.config import Settings
from tests.conftest import unique

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@pytest.fixture
def work_queue(settings: Settings) -> Iterator[None]:
    """The worker's queue on the real broker, as the worker declares it (deleted after)."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.queue_declare(settings.queue, durable=True)
    yield
    channel.queue_delete(settings.queue)
    connection.close()


def ready(make_client: ClientFactory, settings: Settings) -> tuple[int, dict, float]:
    client = make_client(app_settings=settings)
    started = time.perf_counter()
    result = client.simulate_get("/ready")
    return result.status_code, result.json, time.perf_counter() - started


def test_ready_when_every_dependency_answers(
    make_client: ClientFactory, settings: Settings, store_db, minio: Minio, work_queue: None
) -> None:
    status, body, _ = ready(make_client, settings)
    assert status == 200
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"store", "broker", "object_storage"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["ms"], int) and 0 <= check["ms"] <= 1000


def test_broker_down_is_degraded_and_still_200(
    make_client: ClientFactory, settings: Settings, store_db, minio: Minio
) -> None:
    port = closed_port()
    down = replace(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F")
    status, body, _ = ready(make_client, down)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "unreachable"
    assert body["checks"]["broker"]["detail"] == f"connection refused at 127.0.0.1:{port}"
    assert body["checks"]["store"]["status"] == "ok"
    assert body["checks"]["object_storage"]["status"] == "ok"


def test_a_missing_work_queue_is_named(
    make_client: ClientFactory, settings: Settings, store_db, minio: Minio
) -> None:
    status, body, _ = ready(make_client, settings)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["broker"]["status"] == "missing"
    assert settings.queue in body["checks"]["broker"]["detail"]


def test_object_storage_down_is_degraded_and_still_200(
    make_client: ClientFactory, settings: Settings, store_db, work_queue: None
) -> None:
    port = closed_port()
    status, body, _ = ready(make_client, replace(settings, s3_endpoint=f"127.0.0.1:{port}"))
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["object_storage"] == {
        "status": "unreachable",
        "detail": f"connection refused at 127.0.0.1:{port}",
        "ms": body["checks"]["object_storage"]["ms"],
    }
    assert body["checks"]["broker"]["status"] == "ok"


def test_a_missing_source_bucket_is_named(
    make_client: ClientFactory, settings: Settings, store_db, work_queue: None
) -> None:
    elsewhere = replace(settings, source_bucket=unique("nobucket"))
    status, body, _ = ready(make_client, elsewhere)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["object_storage"]["status"] == "missing"
    assert elsewhere.source_bucket in body["checks"]["object_storage"]["detail"]


def test_store_down_is_503_unavailable(
    make_client: ClientFactory, settings: Settings, dead_store: None, minio: Minio, work_queue: None
) -> None:
    status, body, _ = ready(make_client, settings)
    assert (status, body["status"]) == (503, "unavailable")
    assert body["checks"]["store"]["status"] == "failed"
    assert body["checks"]["store"]["detail"].startswith("the store does not answer: ")
    assert "port 9 failed" in body["checks"]["store"]["detail"]
    assert body["checks"]["broker"]["status"] == "ok"
    assert make_client().simulate_get("/health").status_code == 200


def test_hung_dependencies_are_asked_in_parallel_and_given_one_second(
    make_client: ClientFactory, settings: Settings, store_db
) -> None:
    with silent_listener() as broker_port, silent_listener() as s3_port:
        hung = replace(
            settings,
            amqp_url=f"amqp://guest:guest@127.0.0.1:{broker_port}/%2F",
            s3_endpoint=f"127.0.0.1:{s3_port}",
        )
        status, body, seconds = ready(make_client, hung)
    assert (status, body["status"]) == (200, "degraded")
    for name, port in (("broker", broker_port), ("object_storage", s3_port)):
        assert body["checks"][name] == {
            "status": "timeout",
            "detail": f"no answer within 1 s from 127.0.0.1:{port}",
            "ms": 1000,
        }
    # One second for both, not one after the other.
    assert seconds < 1.5


def test_without_minio_the_broker_is_unused_and_the_image_folder_is_checked(
    make_client: ClientFactory, settings: Settings, store_db, tmp_path: Path
) -> None:
    local = replace(settings, storage="local")
    status, body, _ = ready(make_client, local)
    assert (status, body["status"]) == (200, "ready")
    assert body["checks"]["broker"] == {
        "status": "unused",
        "detail": "not used without MinIO",
        "ms": 0,
    }
    assert body["checks"]["object_storage"]["status"] == "ok"

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    status, body, _ = ready(make_client, replace(local, data_dir=not_a_folder))
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["object_storage"]["status"] == "failed"
    assert "is not a directory (ZIPFLOW_DATA_DIR)" in body["checks"]["object_storage"]["detail"]
