"""Whether an event's object should be loaded, and if not, why.

Delivery is at least once and unordered, so the worker asks two questions before loading:
does the event concern a source zip's content at all, and is the object's current version
one the store has not reflected yet. An object version is (bucket, key, etag,
last-modified): a duplicate event repeats all four, while re-uploading the same bytes
gives a new last-modified, so that upload still wins in snapshot mode.
"""

from shared.models import Run, last_loaded_run, utcnow
from shared.storage import SourceObject
from worker.events import ObjectEvent

# The note the worker puts on a run that failed because the archive itself is bad, so
# that a duplicate event or the reconcile sweep does not fail it again every time.
BAD_ARCHIVE_NOTE = "bad archive: not retried until a new version is uploaded"


def event_skip_reason(event: ObjectEvent, source_bucket: str) -> str | None:
    """Why the event alone shows there is nothing to load, or None."""
    if event.bucket != source_bucket:
        return f"bucket {event.bucket!r} is not the source bucket {source_bucket!r}"
    if event.key.endswith("/"):
        return "folder marker"
    if not event.key.lower().endswith(".zip"):
        return "not a .zip"
    if not event.changes_content:
        return f"{event.name} changes no content"
    return None


def version_skip_reason(obj: SourceObject, mode: str) -> str | None:
    """Why the object's current version must not be loaded, or None.

    In snapshot mode the store shows one archive, so an archive older than the one loaded
    is stale: the newest upload wins whatever order the events arrive in. In merge mode
    the pipeline applies the same rule row by row, so nothing is stale here.
    """
    done = processed_run(obj)
    if done is not None:
        return f"already processed by run {done.id} ({done.status})"
    if mode != "snapshot" or obj.last_modified is None:
        return None
    last = last_loaded_run()
    if last is None or last.source_modified is None:
        return None
    if obj.last_modified < last.source_modified:
        return (
            f"older (modified {obj.last_modified:%Y-%m-%d %H:%M:%S}) than {last.source} "
            f"(modified {last.source_modified:%Y-%m-%d %H:%M:%S}) loaded by run {last.id}"
        )
    return None


def processed_run(obj: SourceObject) -> Run | None:
    """The run that already loaded exactly this object version, or found it unloadable."""
    return (
        Run.select()
        .where(
            Run.source == obj.label,
            Run.etag == obj.etag,
            Run.source_modified == obj.last_modified,
            (Run.status == "succeeded")
            | ((Run.status == "failed") & (Run.note == BAD_ARCHIVE_NOTE)),
        )
        .order_by(Run.id.desc())
        .first()
    )


def abandon_running(source: str) -> int:
    """Mark runs of `source` left "running" by a worker that died mid-run as failed.

    Called only for a redelivered message: RabbitMQ gives a message to one consumer at a
    time, so a run still "running" for it belongs to the consumer that lost it.
    """
    return (
        Run.update(
            status="failed",
            error="abandoned: the worker stopped mid-run; the event was redelivered",
            finished_at=utcnow(),
        )
        .where(Run.source == source, Run.status == "running")
        .execute()
    )
