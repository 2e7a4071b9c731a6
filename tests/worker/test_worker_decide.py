"""The skip rules, one at a time, on the store's real Run table."""

from datetime import datetime

import pytest

from shared.models import Run
from shared.storage import SourceObject
from worker.consumer import Backoff
from worker.decide import (
    BAD_ARCHIVE_NOTE,
    event_skip_reason,
    sweep_skip_reason,
    version_of,
    version_of_sequencer,
    version_skip_reason,
)
from worker.events import ObjectEvent

NOON = datetime(2026, 9, 20, 12, 0, 0)
LATER = datetime(2026, 9, 20, 12, 0, 1)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ObjectEvent("s3:ObjectCreated:Put", "source", "a b.zip"), None),
        (ObjectEvent("s3:ObjectCreated:Put", "source", "A.ZIP"), None),
        (
            ObjectEvent("s3:ObjectCreated:Put", "other", "a.zip"),
            "bucket 'other' is not the source bucket 'source'",
        ),
        (ObjectEvent("s3:ObjectCreated:Put", "source", "dir.zip/"), "folder marker"),
        (ObjectEvent("s3:ObjectCreated:Put", "source", "a.csv"), "not a .zip"),
        (
            ObjectEvent("s3:ObjectCreated:PutLegalHold", "source", "a.zip"),
            "s3:ObjectCreated:PutLegalHold changes no content",
        ),
    ],
)
def test_event_skip_reason(event: ObjectEvent, reason: str | None) -> None:
    assert event_skip_reason(event, "source") == reason


def loaded(
    source: str, etag: str, modified: datetime, status: str = "succeeded", note: str | None = None
) -> Run:
    return Run.create(
        source=source,
        etag=etag,
        source_modified=modified,
        source_version=version_of(modified),
        status=status,
        note=note,
        finished_at=datetime.now(),
    )


def skip(obj: SourceObject, mode: str) -> str | None:
    return version_skip_reason(obj, version_of(obj.last_modified), mode)


def test_a_new_version_is_loaded(db) -> None:
    assert skip(SourceObject("source", "a.zip", "e1", 10, NOON), "snapshot") is None


def test_the_same_version_is_a_duplicate(db) -> None:
    run = loaded("source/a.zip", "e1", NOON)
    reason = skip(SourceObject("source", "a.zip", "e1", 10, NOON), "snapshot")
    assert reason == f"already processed by run {run.id} (succeeded)"


def test_same_bytes_uploaded_again_later_are_a_new_version(db) -> None:
    loaded("source/a.zip", "e1", NOON)
    assert skip(SourceObject("source", "a.zip", "e1", 10, LATER), "snapshot") is None


def test_a_transient_failure_does_not_count_as_processed(db) -> None:
    loaded("source/a.zip", "e1", NOON, status="failed")
    assert skip(SourceObject("source", "a.zip", "e1", 10, NOON), "merge") is None


def test_a_bad_archive_counts_as_processed(db) -> None:
    run = loaded("source/a.zip", "e1", NOON, status="failed", note=BAD_ARCHIVE_NOTE)
    reason = skip(SourceObject("source", "a.zip", "e1", 10, NOON), "merge")
    assert reason == f"already processed by run {run.id} (failed)"


def test_an_older_archive_is_stale_in_snapshot_mode_only(db) -> None:
    run = loaded("source/new.zip", "e2", LATER)
    older = SourceObject("source", "old.zip", "e1", 10, NOON)
    reason = skip(older, "snapshot")
    assert reason == (
        "older (modified 2026-09-20 12:00:00.000) than source/new.zip "
        f"(modified 2026-09-20 12:00:01.000) loaded by run {run.id}"
    )
    assert skip(older, "merge") is None


def test_an_archive_as_old_as_the_loaded_one_is_not_stale(db) -> None:
    loaded("source/new.zip", "e2", NOON)
    assert skip(SourceObject("source", "twin.zip", "e3", 10, NOON), "snapshot") is None


def test_retry_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=5.0)
    assert [backoff.delay(attempt) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


NOON_MS = 10**6  # one millisecond, in the nanoseconds versions count


def test_versions_within_one_second_are_ordered_by_the_sequencer(db) -> None:
    newer = version_of(NOON) + 200 * NOON_MS
    run = Run.create(
        source="source/new.zip",
        etag="e2",
        source_modified=NOON,
        source_version=newer,
        status="succeeded",
        finished_at=datetime.now(),
    )
    older = SourceObject("source", "old.zip", "e1", 10, NOON)
    reason = version_skip_reason(older, version_of(NOON) + 100 * NOON_MS, "snapshot")
    assert reason == (
        "older (modified 2026-09-20 12:00:00.100) than source/new.zip "
        f"(modified 2026-09-20 12:00:00.200) loaded by run {run.id}"
    )
    assert version_skip_reason(older, newer + 1, "snapshot") is None


def test_the_sequencer_is_upper_case_hex_nanoseconds() -> None:
    assert version_of_sequencer("186A2B3C4F1A2B3C") == 0x186A2B3C4F1A2B3C
    assert version_of_sequencer("") is None
    assert version_of_sequencer("not hex") is None


def test_the_sweep_compares_the_newest_zip_with_the_archive_loaded_last(db) -> None:
    new = SourceObject("source", "new.zip", "e2", 10, LATER)
    old = loaded("source/old.zip", "e1", NOON)
    loaded("source/new.zip", "e2", LATER)
    assert sweep_skip_reason(new, version_of(LATER), "snapshot").startswith("the store shows it")
    # The older zip loaded again after it: the store is behind although new.zip was loaded.
    again = loaded("source/old.zip", "e1", NOON)
    assert again.id > old.id
    assert sweep_skip_reason(new, version_of(LATER), "snapshot") is None
    assert sweep_skip_reason(new, version_of(LATER), "merge").startswith("already processed")


def test_the_sweep_leaves_a_newest_zip_that_is_a_bad_archive(db) -> None:
    loaded("source/good.zip", "e1", NOON)
    bad = loaded("source/bad.zip", "e2", LATER, status="failed", note=BAD_ARCHIVE_NOTE)
    newest = SourceObject("source", "bad.zip", "e2", 10, LATER)
    assert sweep_skip_reason(newest, version_of(LATER), "snapshot") == (
        f"run {bad.id} found it a bad archive"
    )


def test_the_sweep_keeps_the_loaded_zip_when_the_newest_shares_its_millisecond(db) -> None:
    # A listing cannot order two zips within one millisecond; the event-ordered load stays.
    loaded_version = version_of(NOON) + 5 * NOON_MS + 700
    Run.create(
        source="source/a.zip",
        etag="e1",
        source_version=loaded_version,
        status="succeeded",
        finished_at=datetime.now(),
    )
    twin = SourceObject("source", "b.zip", "e2", 10, NOON)
    reason = sweep_skip_reason(twin, version_of(NOON) + 5 * NOON_MS, "snapshot")
    assert reason.startswith("source/a.zip loaded by run")
