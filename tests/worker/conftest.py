"""Fixtures for the worker: the real RabbitMQ, a worker running in a thread, SQLite only.

The worker's logic does not depend on the database engine (the pipeline's tests cover
PostgreSQL), so these tests run once, on SQLite, to stay fast.
"""

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import peewee
import pika
import pytest
from minio import Minio
from moto.s3.models import FakeKey

from shared.config import Settings
from shared.db import open_database
from shared.models import create_schema
from shared.storage import MinioStore, SourceBucket, minio_client
from worker.consumer import Backoff, Consumer
from worker.handler import Handler

AMQP_URL = os.environ.get("ZIPFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared per-test settings on the local broker, with the sweep and the metrics
    endpoint off unless a test wants them."""
    return replace(
        settings, amqp_url=AMQP_URL, reconcile_seconds=0, max_deliveries=3, worker_metrics_port=0
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[peewee.Database]:
    database = open_database(settings.database_url)
    create_schema()
    yield database
    database.close()


@pytest.fixture
def broker(settings: Settings) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A channel on the real broker; the test's exchanges and queues are deleted afterwards."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    yield channel
    if not channel.is_open:
        channel = connection.channel()
    for queue in (settings.queue, settings.dead_letter):
        channel.queue_delete(queue)
    for exchange in (settings.exchange, settings.dead_letter):
        channel.exchange_delete(exchange)
    connection.close()


@dataclass
class RunningWorker:
    consumer: Consumer
    thread: threading.Thread

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def start_worker(db: peewee.Database, minio: Minio, broker: object) -> Iterator[callable]:
    """Start a worker thread for given settings; it is stopped after the test."""
    started: list[RunningWorker] = []

    def start(
        settings: Settings, store: MinioStore | None = None, consumer: type[Consumer] = Consumer
    ) -> RunningWorker:
        """`store` replaces the processed bucket's, for tests that make it fail; `consumer`
        a subclass of the real consumer, for tests that watch it."""
        client = minio_client(settings)
        handler = Handler(
            settings,
            SourceBucket(client, settings.source_bucket),
            store or MinioStore(client, settings.processed_bucket),
        )
        consumer = consumer(
            settings,
            handler,
            retry=Backoff(first=0.05, cap=0.2),
            reconnect=Backoff(first=0.1, cap=0.5),
        )
        thread = threading.Thread(target=consumer.run, name="worker-under-test")
        thread.start()
        assert consumer.consuming.wait(10), "the worker did not start consuming"
        worker = RunningWorker(consumer, thread)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.thread.is_alive():
            worker.stop()


@pytest.fixture(scope="session", autouse=True)
def listings_in_milliseconds() -> Iterator[None]:
    """Make moto list modification times with milliseconds, as MinIO does.

    MinIO's listings format ModTime with milliseconds (internal/amztime ISO8601Format); moto
    rounds them to whole seconds, which would hide the precision the worker relies on when
    no event carries a sequencer. HEAD keeps whole seconds on both.
    """
    original = FakeKey.last_modified_ISO8601
    FakeKey.last_modified_ISO8601 = property(
        lambda key: (
            key.last_modified.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{key.last_modified.microsecond // 1000:03d}Z"
        )
    )
    yield
    FakeKey.last_modified_ISO8601 = original


@pytest.fixture(autouse=True)
def worker_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="zipflow.worker")
    return caplog
