"""Whether an event's object should be loaded, and if not, why.

Delivery is at least once and unordered, so the worker asks two questions before loading:
does the event concern a source zip's content at all, and is the object's version one the
store has not reflected yet. An object version is (bucket, key, etag, modification time):
a duplicate event repeats all four, while re-uploading the same bytes gives a new
modification time, so that upload still wins in snapshot mode. Versions are ordered by
MinIO's sequencer, the modification time in nanoseconds; without an event (the sweep, a
reprocess) by a listing's milliseconds; never by HEAD's whole seconds.
"""

from datetime import datetime, timedelta

from shared.models import Run, last_loaded_run
from shared.storage import SourceObject
from worker.events import ObjectEvent

# The note the worker puts on a run that failed because the archive itself is bad, so
# that a duplicate event or the reconcile sweep does not fail it again every time.
BAD_ARCHIVE_NOTE = "bad archive: not retried until a new version is uploaded"
EPOCH = datetime(1970, 1, 1)
MS = 1_000_000  # nanoseconds


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


def version_of(moment: datetime) -> int:
    """The ordering key of a modification time (naive UTC), in nanoseconds since 1970."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def version_of_sequencer(sequencer: str | None) -> int | None:
    """MinIO's sequencer, the object's modification time in nanoseconds as hex, or None."""
    if not sequencer:
        return None
    try:
        return int(sequencer, 16)
    except ValueError:
        return None


def run_version(run: Run) -> int | None:
    """A run's ordering key; runs recorded before versions were kept have whole seconds."""
    if run.source_version is not None:
        return run.source_version
    return version_of(run.source_modified) if run.source_modified is not None else None


def version_skip_reason(obj: SourceObject, version: int, mode: str) -> str | None:
    """Why the object's version must not be loaded, or None.

    In snapshot mode the store shows one archive, the one loaded last, so a version older
    than it is stale: the newest upload wins whatever order the events arrive in. Versions
    are ordered by the event's sequencer (nanoseconds), so two uploads in one second are
    ordered too. In merge mode the pipeline applies the same rule row by row, so nothing
    is stale here.
    """
    done = processed_run(obj, version)
    if done is not None:
        return f"already processed by run {done.id} ({done.status})"
    if mode != "snapshot":
        return None
    last = last_loaded_run()
    loaded = run_version(last) if last is not None else None
    if loaded is None or version >= loaded:
        return None
    return (
        f"older (modified {_moment(version)}) than {last.source} "
        f"(modified {_moment(loaded)}) loaded by run {last.id}"
    )


def sweep_skip_reason(newest: SourceObject, version: int, mode: str) -> str | None:
    """Why the sweep must not load the bucket's newest zip, or None.

    In snapshot mode the question is whether the store shows it: it is compared with the
    archive loaded last, not with "was it ever loaded", because an older zip loaded after
    it (events handled out of order, an explicit reprocess) leaves the store behind.
    """
    if mode != "snapshot":
        done = processed_run(newest, version)
        return None if done is None else f"already processed by run {done.id} ({done.status})"
    bad = processed_run(newest, version, loaded_too=False)
    if bad is not None:
        return f"run {bad.id} found it a bad archive"
    last = last_loaded_run()
    loaded = run_version(last) if last is not None else None
    if loaded is None:
        return None
    if last.source == newest.label and last.etag == newest.etag and same_ms(loaded, version):
        return f"the store shows it (run {last.id})"
    if loaded // MS >= version // MS:
        return f"{last.source} loaded by run {last.id} is not older (modified {_moment(loaded)})"
    return None


def same_ms(a: int, b: int) -> bool:
    """Whether two ordering keys name one version: a listing knows only milliseconds."""
    return a // MS == b // MS


def processed_run(obj: SourceObject, version: int, loaded_too: bool = True) -> Run | None:
    """The run that already loaded exactly this object version, or found it unloadable.

    With `loaded_too` false, only a bad archive counts. One version is the same key, etag and modification time to the millisecond (a listing's
    precision); runs recorded before versions were kept match on the whole second.
    """
    first = version // MS * MS
    same_time = Run.source_version.between(first, first + MS - 1) | (
        Run.source_version.is_null() & (Run.source_modified == _second(version))
    )
    outcome = (Run.status == "failed") & (Run.note == BAD_ARCHIVE_NOTE)
    if loaded_too:
        outcome |= Run.status == "succeeded"
    return (
        Run.select()
        .where(Run.source == obj.label, Run.etag == obj.etag, same_time, outcome)
        .order_by(Run.id.desc())
        .first()
    )


def _second(version: int) -> datetime:
    return EPOCH + timedelta(seconds=version // 10**9)


def _moment(version: int) -> str:
    moment = EPOCH + timedelta(microseconds=version // 1000)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"
