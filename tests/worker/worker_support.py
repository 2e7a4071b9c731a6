"""Helpers for the worker tests: the exact notification MinIO publishes, and waiting.

The event body mirrors what MinIO's AMQP target sends (a real capture's layout): the
object key escaped like Go's `url.QueryEscape`, the top-level "Key" unescaped.
"""

import contextlib
import json
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pika

from shared.config import Settings
from tests.minio_events import minio_body

T = TypeVar("T")

EVENT_TIME = datetime(2026, 9, 20, 10, 15, 30, 123000, tzinfo=UTC)


def minio_event(
    bucket: str,
    key: str,
    etag: str | None = "d41d8cd98f00b204e9800998ecf8427e",
    size: int | None = 1024,
    name: str = "s3:ObjectCreated:Put",
) -> bytes:
    """MinIO's body (tests/minio_events.py) without its sequencer, as a server other than
    MinIO may send: the worker then orders versions by the listing's time."""
    document = json.loads(minio_body(bucket, key, etag, size or 0, EVENT_TIME, name, EVENT_TIME))
    del document["Records"][0]["s3"]["object"]["sequencer"]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def upload_zip(
    minio, settings: Settings, path: Path, key: str, part_size: int = 0
) -> tuple[str, int, datetime]:
    """Put a file into the source bucket; its etag, size and the listing's modification time."""
    with path.open("rb") as stream:
        result = minio.put_object(
            settings.source_bucket,
            key,
            stream,
            path.stat().st_size,
            content_type="application/zip",
            part_size=part_size,
        )
    [listed] = [
        item
        for item in minio.list_objects(settings.source_bucket, prefix=key)
        if item.object_name == key
    ]
    return result.etag.strip('"'), path.stat().st_size, listed.last_modified


def event_for(
    minio, settings: Settings, path: Path, key: str, name: str = "s3:ObjectCreated:Put", **kw
) -> bytes:
    """Upload `path` as `key` and return the body MinIO would publish for that upload."""
    etag, size, modified = upload_zip(minio, settings, path, key, **kw)
    return minio_body(settings.source_bucket, key, etag, size, modified, name=name)


def publish_event(
    channel: pika.adapters.blocking_connection.BlockingChannel, settings: Settings, body: bytes
) -> None:
    """Publish to the events exchange as MinIO does: persistent, JSON, routing key = exchange's."""
    channel.basic_publish(
        exchange=settings.exchange,
        routing_key="bucketevents",
        body=body,
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )


def wait_for(condition: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def write_zip(
    path: Path, users: dict[str, tuple[str, str, int]], images: dict[str, bytes] | None = None
) -> Path:
    """A small archive of `<id>.csv` (and `<id>.png`) members."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for user_id, (first, last, birthts) in users.items():
            archive.writestr(
                f"data/{user_id}.csv", f"first_name,last_name,birthts\n{first},{last},{birthts}\n"
            )
        for user_id, data in (images or {}).items():
            archive.writestr(f"data/{user_id}.png", data)
    return path


class SlowProxy:
    """A TCP proxy that holds every chunk a client sends for `delay` seconds.

    Put in front of the S3 endpoint, it makes each request of a load take at least
    `delay`, so a test can act while a run is surely in progress, however fast moto is.
    `hold()` stops forwarding requests until `release()`, for a test whose action (a
    rabbitmqctl call, say) may take longer than any delay on a busy machine.
    """

    def __init__(self, upstream: str, delay: float, port: int = 0) -> None:
        host, upstream_port = upstream.rsplit(":", 1)
        self.upstream = (host, int(upstream_port))
        self.delay = delay
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.listener = socket.create_server(("127.0.0.1", port))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.forwarding.clear()

    def release(self) -> None:
        self.forwarding.set()

    def close(self) -> None:
        self.release()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(
                target=self._pump, args=(client, server, self.delay, self.forwarding), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, 0.0, None), daemon=True
            ).start()

    @staticmethod
    def _pump(
        source: socket.socket,
        target: socket.socket,
        delay: float,
        forwarding: threading.Event | None,
    ) -> None:
        try:
            while chunk := source.recv(65536):
                if delay:
                    time.sleep(delay)
                if forwarding is not None:
                    forwarding.wait()
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


def take_message(channel, queue: str, timeout: float = 10.0) -> tuple[object, bytes]:
    """(properties, body) of the next message, by consuming: the work queue has a single
    active consumer, and RabbitMQ refuses basic.get on such a queue."""
    for method, properties, body in channel.consume(
        queue, auto_ack=True, inactivity_timeout=timeout
    ):
        channel.cancel()
        assert method is not None, f"no message in {queue} within {timeout}s"
        return properties, body
    raise AssertionError("the consumer ended without a message")
