"""What the worker does with one message or one reconcile sweep, knowing nothing of RabbitMQ.

`Handler.handle` returns normally when the message is done with (loaded, skipped, or a
bad archive recorded as a failed run), raises `EventError` or `MessageError` when the
message can never be handled, and lets every other exception through: that is transient
trouble (MinIO or the database unreachable), which the consumer retries.
"""

import logging
import tempfile
import time
from pathlib import Path

from shared.config import Settings
from shared.db import load_lock
from shared.messages import REPROCESS_TYPE, Reprocess
from shared.models import Run, User
from shared.pipeline import Job, abandon_orphaned_runs, process, record_skipped
from shared.storage import ObjectChanged, ProcessedStore, SourceBucket, SourceObject
from worker.decide import (
    BAD_ARCHIVE_NOTE,
    event_skip_reason,
    sweep_skip_reason,
    version_of,
    version_of_sequencer,
    version_skip_reason,
)
from worker.events import ObjectEvent, parse_event
from worker.metrics import WorkerMetrics

log = logging.getLogger("zipflow.worker")

# The type of the sweep requests every worker puts on its own queue (see worker.consumer).
RECONCILE_TYPE = "zipflow.reconcile"
USERS_TABLE = User._meta.table_name


def describe(body: bytes, kind: str | None) -> str:
    """A short name for a message in log lines, whatever its shape.

    It never raises: it runs before the message is settled, so an exception here would stop
    the processing thread on every delivery of that message and stall the queue.
    """
    try:
        if kind == RECONCILE_TYPE:
            return "reconcile sweep"
        if kind == REPROCESS_TYPE:
            command = Reprocess.from_body(body)
            return f"reprocess run {command.run_id} {command.key}"
        events = parse_event(body)
        return ", ".join(f"event {e.name} {e.label}" for e in events) or "event with no records"
    except Exception:
        return "malformed message"


def retries(run: Run, redelivered: bool) -> bool:
    """Whether a redelivered command's failed run is tried again.

    A transient failure marks the run failed and sends the command back to the queue, so a
    redelivery finds it failed; it is retried until the consumer's delivery limit. A bad
    archive fails for good and is not tried again.
    """
    return redelivered and run.status == "failed" and run.note != BAD_ARCHIVE_NOTE


class Handler:
    """Turns events, reprocess commands and sweeps into pipeline runs, one at a time."""

    def __init__(
        self,
        settings: Settings,
        source: SourceBucket,
        store: ProcessedStore,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.store = store
        self.metrics = metrics or WorkerMetrics(settings.reconcile_seconds)
        self.outcome = "skipped"

    def handle(self, body: bytes, kind: str | None, redelivered: bool) -> str:
        """Handle one message; `kind` is its AMQP type property, MinIO sets none.

        Returns the outcome the metrics count: loaded, skipped, failed (a bad archive) or
        ignored (an event that is none of zipflow's business).
        """
        self.outcome = "skipped"
        if kind == RECONCILE_TYPE:
            self.sweep()
            return self.outcome
        if kind == REPROCESS_TYPE:
            self.reprocess(Reprocess.from_body(body), redelivered)
            return self.outcome
        events = parse_event(body)
        if not events:
            log.info("event with no records -> skipped: nothing to do")
        for event in events:
            self.handle_event(event)
        return self.outcome

    def handle_event(self, event: ObjectEvent) -> None:
        what = f"event {event.name} {event.label}"
        log.info("%s etag=%s -> received", what, event.etag)
        reason = event_skip_reason(event, self.settings.source_bucket)
        if reason is not None:
            log.info(
                "%s -> skipped: %s", what, reason, extra={"key": event.key, "outcome": "ignored"}
            )
            self.outcome = "ignored"
            return
        # Decided and loaded under one hold of the load lock: a standby that took the queue
        # over decides only once the load it waits for has committed.
        with load_lock(USERS_TABLE):
            self.reap(what)
            obj, version, reason = self.event_version(event)
            if reason is None:
                reason = version_skip_reason(obj, version, self.settings.mode)
            if reason is not None:
                modified = obj.last_modified if obj else None
                run = record_skipped(
                    obj.label if obj else event.label,
                    obj.etag if obj else event.etag,
                    modified,
                    "event",
                    reason,
                    version=version,
                )
                log.info("%s -> skipped (run %d): %s", what, run.id, reason)
                return
            self.load(obj, what, "event", version=version)

    def event_version(
        self, event: ObjectEvent
    ) -> tuple[SourceObject | None, int | None, str | None]:
        """The object the event announced, its ordering key, and why not to load it, if so.

        MinIO's sequencer is the version's modification time in nanoseconds. HEAD shows the
        current version; when it is not the announced one, that version has an event of its
        own, so this one is done with. Without a sequencer (another S3 server), the listing's
        milliseconds order the version.
        """
        version = version_of_sequencer(event.sequencer)
        if version is None:
            obj = self.source.listed(event.key)
            if obj is None:
                return None, None, "object no longer exists"
            return obj, version_of(obj.last_modified), None
        obj = self.source.stat(event.key)
        if obj is None:
            return None, version, "object no longer exists"
        announced_second = version // 10**9 * 10**9
        if (event.etag and obj.etag != event.etag) or version_of(
            obj.last_modified
        ) != announced_second:
            return (
                obj,
                version,
                f"replaced since this event (now etag {obj.etag}, modified "
                f"{obj.last_modified:%Y-%m-%d %H:%M:%S}): the new version's own event loads it",
            )
        return obj, version, None

    def reap(self, what: str) -> None:
        """Close the runs of loads that died; the caller holds the load lock."""
        count = abandon_orphaned_runs()
        if count:
            log.info(
                "%s -> marked %d run(s) a stopped worker left running as abandoned", what, count
            )

    def reprocess(self, command: Reprocess, redelivered: bool) -> None:
        """Run the pipeline on the named key even when that version was processed already."""
        what = f"reprocess run {command.run_id} {self.settings.source_bucket}/{command.key}"
        log.info("%s -> received", what)
        with load_lock(USERS_TABLE):
            self.reap(what)
            queued = Run.get_or_none(Run.id == command.run_id)
            if queued is None:
                log.info("%s -> skipped: run %d does not exist", what, command.run_id)
                return
            run_id = command.run_id
            if queued.status == "abandoned" and redelivered:
                # The worker holding this command died mid-load: its run stays abandoned, and
                # the load it never finished gets a run of its own.
                again = Run.create(source=queued.source, trigger="reprocess", status="queued")
                queued.note = f"{queued.note}; the redelivered command loads it as run {again.id}"
                queued.save(only=[Run.note])
                run_id = again.id
            elif not (queued.status == "queued" or retries(queued, redelivered)):
                log.info("%s -> skipped: run already %s", what, queued.status)
                return
            obj = self.source.listed(command.key)
            if obj is None:
                label = f"{self.settings.source_bucket}/{command.key}"
                note = "object no longer exists"
                record_skipped(label, None, None, "reprocess", note, run_id=run_id)
                log.info("%s -> skipped: %s", what, note)
                return
            self.load(obj, what, "reprocess", run_id=run_id, version=version_of(obj.last_modified))

    def sweep(self) -> None:
        """Reconcile, where a failure only waits for the next sweep: it is a safety net."""
        try:
            with load_lock(USERS_TABLE):
                self.reap("reconcile sweep")
                self.reconcile()
        except Exception as error:
            log.warning("reconcile sweep failed, next one at the usual time: %r", error)

    def reconcile(self) -> None:
        """Load the newest zip if the store does not show it: a safety net, one listing.

        Events published while no queue was bound, dropped by MinIO under load or refused
        by its full queue are gone for good; this catches the one that matters, the newest
        archive. The listing's milliseconds order it against the archive loaded last.
        """
        newest = self.source.newest_zip()
        if newest is None:
            log.debug("reconcile: no zip in %s", self.settings.source_bucket)
            self.metrics.lag(None)
            return
        version = version_of(newest.last_modified)
        reason = sweep_skip_reason(newest, version, self.settings.mode)
        if reason is not None:
            log.debug("reconcile: %s up to date: %s", newest.label, reason)
            self.metrics.lag(None)
            return
        # The lost-event detector: the newest zip is not loaded although its event should
        # have loaded it; how long it waited stays visible until the next sweep.
        self.metrics.lag(newest.last_modified)
        self.load(newest, f"reconcile {newest.label}", "reconcile", version=version)

    def load(
        self,
        obj: SourceObject,
        what: str,
        trigger: str,
        run_id: int | None = None,
        version: int | None = None,
    ) -> Run:
        """Download the object and run the pipeline on it; transient errors propagate."""
        limit = self.settings.limits.max_archive_bytes
        if obj.size is not None and obj.size > limit:
            return self.refuse(
                obj,
                what,
                trigger,
                run_id,
                version,
                f"the archive is {obj.size} bytes, over the limit of {limit} (ZIPFLOW_MAX_ARCHIVE_BYTES)",
            )
        started = time.perf_counter()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="incoming-", dir=self.settings.data_dir) as tmp:
            path = Path(tmp) / "archive.zip"
            try:
                self.source.download(obj.key, path, obj.etag)
            except ObjectChanged as error:
                note = f"{error}: it changed after it was checked, and its new version is loaded by its own event"
                run = record_skipped(
                    obj.label, obj.etag, obj.last_modified, trigger, note, run_id, version
                )
                log.info("%s -> skipped (run %d): %s", what, run.id, note)
                return run
            job = Job(
                path=path,
                source=obj.label,
                etag=obj.etag,
                modified=obj.last_modified,
                trigger=trigger,
                run_id=run_id,
                version=version,
            )
            run = process(job, self.settings, self.store)
        seconds = time.perf_counter() - started
        self.metrics.run(run, seconds)
        self.outcome = "loaded" if run.status == "succeeded" else "failed"
        extra = {
            "key": obj.key,
            "etag": obj.etag,
            "run_id": run.id,
            "outcome": self.outcome,
            "duration": round(seconds, 3),
        }
        if run.status == "succeeded":
            log.info(
                "%s -> processed run %d: %d users (%d inserted, %d updated, %d deleted, "
                "%d unchanged, %d rejected), %d images uploaded, in %.3fs",
                what,
                run.id,
                run.users_in_archive,
                run.inserted,
                run.updated,
                run.deleted,
                run.unchanged,
                run.rejected,
                run.images_uploaded,
                seconds,
                extra=extra,
            )
            if run.warnings:
                log.warning("%s -> run %d: %s", what, run.id, "; ".join(run.warnings))
        else:
            # process() returns a failed run only for a bad archive; other failures raise.
            run.note = BAD_ARCHIVE_NOTE
            run.save(only=[Run.note])
            log.warning(
                "%s -> failed run %d: bad archive: %s", what, run.id, run.error, extra=extra
            )
        return run

    def refuse(
        self,
        obj: SourceObject,
        what: str,
        trigger: str,
        run_id: int | None,
        version: int | None,
        error: str,
    ) -> Run:
        """Record a bad archive found before downloading it, as the pipeline would have."""
        run = record_skipped(
            obj.label, obj.etag, obj.last_modified, trigger, BAD_ARCHIVE_NOTE, run_id, version
        )
        run.status, run.error = "failed", error
        run.save()
        self.metrics.run(run, 0.0)
        self.outcome = "failed"
        log.warning(
            "%s -> failed run %d: bad archive: %s",
            what,
            run.id,
            error,
            extra={"key": obj.key, "etag": obj.etag, "run_id": run.id, "outcome": "failed"},
        )
        return run
