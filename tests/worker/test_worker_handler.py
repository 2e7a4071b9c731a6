"""The handler on its own, against moto: what it does when the object moves under it, and
with bodies it cannot read."""

import io
from pathlib import Path

import pytest
from minio import Minio
from worker_support import write_zip

from shared.config import Settings
from shared.messages import REPROCESS_TYPE, MessageError, Reprocess
from shared.models import Run, User, queue_run
from shared.storage import MinioStore, SourceBucket
from tests.minio_events import minio_body
from worker.decide import BAD_ARCHIVE_NOTE
from worker.events import EventError
from worker.handler import Handler, describe


def test_a_version_replaced_after_its_check_is_skipped_not_loaded_under_the_old_etag(
    db, minio: Minio, settings: Settings, tmp_path: Path
) -> None:
    source = SourceBucket(minio, settings.source_bucket)
    handler = Handler(settings, source, MinioStore(minio, settings.processed_bucket))
    first = write_zip(tmp_path / "first.zip", {"1": ("Old", "User", 0)}).read_bytes()
    second = write_zip(tmp_path / "second.zip", {"2": ("New", "User", 0)}).read_bytes()
    minio.put_object(settings.source_bucket, "users.zip", io.BytesIO(first), len(first))
    checked = source.stat("users.zip")
    minio.put_object(settings.source_bucket, "users.zip", io.BytesIO(second), len(second))

    run = handler.load(checked, "test", "event")

    assert (run.status, run.etag) == ("skipped", checked.etag)
    assert "changed after it was checked" in run.note
    assert User.select().count() == 0
    current = source.stat("users.zip")
    loaded = handler.load(current, "test", "event")
    assert loaded.status == "succeeded"
    assert [u.user_id for u in User.select()] == ["2"]
    assert Run.select().count() == 2


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[" * 100_000, None),
        (b"[" * 100_000, REPROCESS_TYPE),
        (b'{"Records": [], "n": ' + b"1" * 5000 + b"}", None),
        (
            b'{"command": "reprocess", "run_id": ' + b"1" * 5000 + b', "key": "a.zip"}',
            REPROCESS_TYPE,
        ),
    ],
)
def test_a_body_json_cannot_parse_is_malformed_for_the_log_and_the_handler(
    db, settings: Settings, body: bytes, kind: str | None
) -> None:
    assert describe(body, kind) == "malformed message"
    handler = Handler(settings, source=None, store=None)
    with pytest.raises((EventError, MessageError), match="is not JSON zipflow can read"):
        handler.handle(body, kind, redelivered=False)


def test_a_redelivered_reprocess_of_a_bad_archive_is_not_tried_again(
    db, minio: Minio, settings: Settings, worker_logs
) -> None:
    handler = Handler(
        settings,
        SourceBucket(minio, settings.source_bucket),
        MinioStore(minio, settings.processed_bucket),
    )
    minio.put_object(settings.source_bucket, "bad.zip", io.BytesIO(b"not a zip"), 9)
    queued = queue_run(f"{settings.source_bucket}/bad.zip", "reprocess")
    body = Reprocess(queued.id, "bad.zip").to_body()

    handler.handle(body, REPROCESS_TYPE, redelivered=False)
    failed = Run.get_by_id(queued.id)
    handler.handle(body, REPROCESS_TYPE, redelivered=True)

    assert (failed.status, failed.note) == ("failed", BAD_ARCHIVE_NOTE)
    assert Run.get_by_id(queued.id).finished_at == failed.finished_at
    assert "skipped: run already failed" in worker_logs.text


def test_an_event_for_a_version_replaced_since_is_skipped_for_the_new_versions_event(
    db, minio: Minio, settings: Settings, tmp_path: Path
) -> None:
    handler = Handler(
        settings,
        SourceBucket(minio, settings.source_bucket),
        MinioStore(minio, settings.processed_bucket),
    )
    first = write_zip(tmp_path / "first.zip", {"1": ("Old", "User", 0)}).read_bytes()
    second = write_zip(tmp_path / "second.zip", {"2": ("New", "User", 0)}).read_bytes()
    put = minio.put_object(settings.source_bucket, "users.zip", io.BytesIO(first), len(first))
    modified = minio.stat_object(settings.source_bucket, "users.zip").last_modified
    stale = minio_body(
        settings.source_bucket, "users.zip", put.etag.strip('"'), len(first), modified
    )
    minio.put_object(settings.source_bucket, "users.zip", io.BytesIO(second), len(second))

    handler.handle(stale, None, redelivered=False)

    [run] = Run.select()
    assert run.status == "skipped"
    assert run.note.startswith("replaced since this event (now etag ")
    assert run.note.endswith("the new version's own event loads it")
    assert User.select().count() == 0
