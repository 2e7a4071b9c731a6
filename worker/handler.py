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
from shared.messages import REPROCESS_TYPE, Reprocess
from shared.models import Run
from shared.pipeline import Job, process, record_skipped
from shared.storage import ObjectChanged, ProcessedStore, SourceBucket, SourceObject
from worker.decide import BAD_ARCHIVE_NOTE, abandon_running, event_skip_reason, version_skip_reason
from worker.events import ObjectEvent, parse_event

log = logging.getLogger("zipflow.worker")

# The type of the sweep requests every worker puts on its own queue (see worker.consumer).
RECONCILE_TYPE = "zipflow.reconcile"


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

    def __init__(self, settings: Settings, source: SourceBucket, store: ProcessedStore) -> None:
        self.settings = settings
        self.source = source
        self.store = store

    def handle(self, body: bytes, kind: str | None, redelivered: bool) -> None:
        """Handle one message; `kind` is its AMQP type property, MinIO sets none."""
        if kind == RECONCILE_TYPE:
            self.sweep()
            return
        if kind == REPROCESS_TYPE:
            self.reprocess(Reprocess.from_body(body), redelivered)
            return
        events = parse_event(body)
        if not events:
            log.info("event with no records -> skipped: nothing to do")
        for event in events:
            self.handle_event(event, redelivered)

    def handle_event(self, event: ObjectEvent, redelivered: bool) -> None:
        what = f"event {event.name} {event.label}"
        log.info("%s etag=%s -> received", what, event.etag)
        reason = event_skip_reason(event, self.settings.source_bucket)
        if reason is not None:
            log.info("%s -> skipped: %s", what, reason)
            return
        obj = self.source.stat(event.key)
        if obj is None:
            run = record_skipped(event.label, event.etag, None, "event", "object no longer exists")
            log.info("%s -> skipped (run %d): object no longer exists", what, run.id)
            return
        if redelivered and abandon_running(obj.label):
            log.info("%s -> marked the run a stopped worker left running as failed", what)
        reason = version_skip_reason(obj, self.settings.mode)
        if reason is not None:
            run = record_skipped(obj.label, obj.etag, obj.last_modified, "event", reason)
            log.info("%s -> skipped (run %d): %s", what, run.id, reason)
            return
        self.load(obj, what, "event")

    def reprocess(self, command: Reprocess, redelivered: bool) -> None:
        """Run the pipeline on the named key even when that version was processed already."""
        what = f"reprocess run {command.run_id} {self.settings.source_bucket}/{command.key}"
        log.info("%s -> received", what)
        queued = Run.get_or_none(Run.id == command.run_id)
        if queued is None:
            log.info("%s -> skipped: run %d does not exist", what, command.run_id)
            return
        if not (queued.status in ("queued", "running") or retries(queued, redelivered)):
            log.info("%s -> skipped: run already %s", what, queued.status)
            return
        obj = self.source.stat(command.key)
        if obj is None:
            label = f"{self.settings.source_bucket}/{command.key}"
            note = "object no longer exists"
            record_skipped(label, None, None, "reprocess", note, run_id=command.run_id)
            log.info("%s -> skipped: %s", what, note)
            return
        self.load(obj, what, "reprocess", run_id=command.run_id)

    def sweep(self) -> None:
        """Reconcile, where a failure only waits for the next sweep: it is a safety net."""
        try:
            self.reconcile()
        except Exception as error:
            log.warning("reconcile sweep failed, next one at the usual time: %r", error)

    def reconcile(self) -> None:
        """Load the newest zip if the store has not reflected it: a safety net, one listing.

        Events published while no queue was bound, or dropped by MinIO under load, are
        gone for good; this catches the one that matters, the newest archive.
        """
        newest = self.source.newest_zip()
        if newest is None:
            log.debug("reconcile: no zip in %s", self.settings.source_bucket)
            return
        # The listing's timestamps are finer than stat's; stat gives the ones runs record.
        obj = self.source.stat(newest.key)
        if obj is None:
            return
        reason = version_skip_reason(obj, self.settings.mode)
        if reason is not None:
            log.debug("reconcile: %s up to date: %s", obj.label, reason)
            return
        self.load(obj, f"reconcile {obj.label}", "reconcile")

    def load(self, obj: SourceObject, what: str, trigger: str, run_id: int | None = None) -> Run:
        """Download the object and run the pipeline on it; transient errors propagate."""
        limit = self.settings.limits.max_archive_bytes
        if obj.size is not None and obj.size > limit:
            return self.refuse(
                obj,
                what,
                trigger,
                run_id,
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
                run = record_skipped(obj.label, obj.etag, obj.last_modified, trigger, note, run_id)
                log.info("%s -> skipped (run %d): %s", what, run.id, note)
                return run
            job = Job(
                path=path,
                source=obj.label,
                etag=obj.etag,
                modified=obj.last_modified,
                trigger=trigger,
                run_id=run_id,
            )
            run = process(job, self.settings, self.store)
        seconds = time.perf_counter() - started
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
            )
            if run.warnings:
                log.warning("%s -> run %d: %s", what, run.id, "; ".join(run.warnings))
        else:
            # process() returns a failed run only for a bad archive; other failures raise.
            run.note = BAD_ARCHIVE_NOTE
            run.save(only=[Run.note])
            log.warning("%s -> failed run %d: bad archive: %s", what, run.id, run.error)
        return run

    def refuse(
        self, obj: SourceObject, what: str, trigger: str, run_id: int | None, error: str
    ) -> Run:
        """Record a bad archive found before downloading it, as the pipeline would have."""
        run = record_skipped(
            obj.label, obj.etag, obj.last_modified, trigger, BAD_ARCHIVE_NOTE, run_id
        )
        run.status, run.error = "failed", error
        run.save()
        log.warning("%s -> failed run %d: bad archive: %s", what, run.id, error)
        return run
