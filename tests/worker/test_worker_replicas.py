"""Several worker replicas on one queue: one loads, the others stand by and take over."""

import threading
from dataclasses import replace

from worker_support import minio_event, publish_event, wait_for

from shared.config import Settings
from shared.storage import MinioStore, SourceBucket, minio_client
from worker.consumer import Backoff, Consumer
from worker.handler import Handler


class RecordingHandler(Handler):
    """A real handler that also notes which replica handled each message."""

    def __init__(self, settings: Settings, name: str, seen: list[str]) -> None:
        client = minio_client(settings)
        super().__init__(
            settings,
            SourceBucket(client, settings.source_bucket),
            MinioStore(client, settings.processed_bucket),
        )
        self.name = name
        self.seen = seen

    def handle(self, body: bytes, kind: str | None, redelivered: bool) -> None:
        self.seen.append(self.name)
        super().handle(body, kind, redelivered)


def start(settings: Settings, name: str, seen: list[str]) -> tuple[Consumer, threading.Thread]:
    consumer = Consumer(
        settings, RecordingHandler(settings, name, seen), reconnect=Backoff(0.1, 0.5)
    )
    thread = threading.Thread(target=consumer.run, name=f"replica-{name}")
    thread.start()
    assert consumer.consuming.wait(10), f"replica {name} did not start consuming"
    return consumer, thread


def test_one_replica_consumes_and_a_standby_takes_over_when_it_stops(
    db, minio, broker, settings: Settings
) -> None:
    settings = replace(settings, reconcile_seconds=0)
    seen: list[str] = []
    first, first_thread = start(settings, "first", seen)
    second, second_thread = start(settings, "second", seen)
    try:
        for index in range(4):
            publish_event(
                broker, settings, minio_event(settings.source_bucket, f"notes-{index}.txt")
            )
        wait_for(lambda: len(seen) == 4, what="four events handled")
        assert seen == ["first"] * 4

        first.stop()
        first_thread.join(timeout=30)
        for index in range(2):
            publish_event(
                broker, settings, minio_event(settings.source_bucket, f"more-{index}.txt")
            )
        wait_for(lambda: len(seen) == 6, what="two more events handled")
        assert seen[4:] == ["second", "second"]
    finally:
        for consumer, thread in ((first, first_thread), (second, second_thread)):
            consumer.stop()
            thread.join(timeout=30)
