"""The one function that runs a load end to end, for the worker and `zipflow process` alike.

check the output path -> read and validate the archive a chunk at a time (skipping user
files whose fingerprint says they are unchanged), staging each chunk in the store ->
apply the rules that span members and count the change -> in one transaction: upload the
changed images, merge the staged rows -> after commit: delete the images of removed users,
export output.csv -> record the run. Memory stays flat with the archive's size (see
`shared.staging`).

A run's status says what happened to the store: `failed` means nothing changed. A step
after the commit that fails leaves the run `succeeded`, with the step named in its
`warnings`.
"""

import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from shared.archive import Archive, ArchiveError, ImageRef, now_ms, open_archive
from shared.config import OUTPUT_KEY, Settings, image_key
from shared.db import data_version, database, load_lock, record_data_change, settle
from shared.export import export_csv
from shared.models import FILTERED_COLUMNS, Run, User, utcnow
from shared.reading import read_rows
from shared.staging import Changes, Found, Staging
from shared.storage import ProcessedStore

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """One archive to load, and where it came from."""

    path: Path
    source: str
    etag: str | None = None
    modified: datetime | None = None
    trigger: str = "cli"
    run_id: int | None = None
    # The version's order (see Run.source_version): the merge rule compares it row by row.
    version: int | None = None


Progress = Callable[[int, int], None]


class OutputPathError(ValueError):
    """Where output.csv should be written cannot take it; found before the load starts."""


def process(
    job: Job,
    settings: Settings,
    store: ProcessedStore,
    csv_out: Path | None = None,
    on_progress: Progress | None = None,
) -> Run:
    """Load `job` and return its finished run.

    An unusable `csv_out` raises OutputPathError before anything changes. A bad archive
    (ArchiveError) fails the run and leaves the store untouched. Any other error before
    the commit is storage or database trouble that a retry may cure: the run is marked
    failed when the store still answers, and the error is re-raised for the caller to
    retry. After the commit the run succeeds whatever happens (see `_after_commit`).
    """
    if csv_out is not None:
        check_csv_out(csv_out, job.path)
    with load_lock(User._meta.table_name):
        abandon_orphaned_runs()
        run = _start_run(job, settings.mode)
        try:
            with _gc_paused():
                images_to_delete = _load(job, run, settings, store, on_progress)
        except ArchiveError as error:
            _fail(run, str(error))
            return run
        except Exception as error:
            try:
                _fail(run, f"{type(error).__name__}: {error}")
            except Exception:
                log.exception("run %s: could not record the failure", run.id)
            raise
        _after_commit(run, images_to_delete, store, csv_out, settings)
        return run


def check_csv_out(path: Path, archive: Path) -> None:
    """Refuse an output.csv path that cannot be written, before the load changes anything.

    The file is opened for appending, which changes no content, and removed again if the
    check created it: permissions, read-only file systems and the like all show here.
    """
    if path.is_dir():
        raise OutputPathError(f"{path} is a directory; name a file, such as {path / OUTPUT_KEY}")
    if not path.parent.is_dir():
        raise OutputPathError(f"{path}: the folder {path.parent} does not exist")
    if path.exists() and path.samefile(archive):
        raise OutputPathError(f"{path} is the archive being loaded; name another file")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as error:
        raise OutputPathError(f"{path} cannot be written: {error.strerror}") from None
    if not existed:
        os.unlink(path)


ABANDONED_NOTE = (
    "abandoned: the process loading it stopped before the load finished (killed, or its "
    "delivery taken back by RabbitMQ); a redelivered message is loaded again by a later run"
)
ABANDONED_AFTER_COMMIT_NOTE = (
    "abandoned after its commit: the store holds this run's data, but the process loading "
    "it stopped before it wrote output.csv and deleted the images no user has any more; "
    "loading the archive again (a redelivered message does) changes no user and does both"
)


def abandon_orphaned_runs() -> int:
    """Mark every run left "running" by a process that died as abandoned; call under the load lock.

    A run is "running" only while its process holds the load lock, so a holder of the lock
    that finds one knows no load holds it any more. Whether that load committed is in the
    run itself: its counts are saved in the load's transaction, and a load that commits
    has at least one user, so `users_in_archive` is 0 until the commit.
    """
    now = utcnow()
    running = Run.status == "running"
    after_commit = (
        Run.update(status="abandoned", note=ABANDONED_AFTER_COMMIT_NOTE, finished_at=now)
        .where(running & (Run.users_in_archive > 0))
        .execute()
    )
    before_commit = (
        Run.update(status="abandoned", note=ABANDONED_NOTE, finished_at=now)
        .where(running)
        .execute()
    )
    return after_commit + before_commit


def record_skipped(
    source: str,
    etag: str | None,
    modified: datetime | None,
    trigger: str,
    note: str,
    run_id: int | None = None,
    version: int | None = None,
) -> Run:
    """Record that an archive was deliberately not loaded, and why."""
    now = utcnow()
    run = Run.get_by_id(run_id) if run_id is not None else Run(queued_at=now)
    run.source, run.etag, run.source_modified, run.trigger = source, etag, modified, trigger
    run.source_version = version
    run.status, run.note, run.started_at, run.finished_at = "skipped", note, now, now
    run.save()
    return run


def _start_run(job: Job, mode: str) -> Run:
    run = Run.get_by_id(job.run_id) if job.run_id is not None else Run()
    run.source, run.etag, run.source_modified = job.source, job.etag, job.modified
    run.source_version = job.version
    run.trigger, run.mode, run.status, run.started_at = job.trigger, mode, "running", utcnow()
    run.save()
    return run


def _succeed(run: Run) -> None:
    """A retried run is the same row: the error of its failed attempt goes."""
    run.status, run.error, run.finished_at = "succeeded", None, utcnow()
    run.save()


def _fail(run: Run, error: str) -> None:
    """Record the failure, and only that: the run in hand may hold the counts of a merge
    whose transaction rolled back, which were never true of the store."""
    run.status, run.error, run.finished_at = "failed", error, utcnow()
    run.save(only=[Run.status, Run.error, Run.finished_at])


def _load(
    job: Job,
    run: Run,
    settings: Settings,
    store: ProcessedStore,
    on_progress: Progress | None,
) -> list[str]:
    """Load the archive and commit; return the ids whose stored images are now orphans."""
    if job.version is not None:
        modified_ms = job.version // 1_000_000
    else:
        modified_ms = _epoch_ms(job.modified) if job.modified else now_ms()
    # Loads into one store run one at a time (`load_lock`), so the store staged against
    # here is still the store when the transaction below writes.
    with (
        open_archive(job.path, settings.limits) as archive,
        Staging() as staging,
    ):
        run.members_total = archive.member_count
        run.save(only=[Run.members_total])
        progress = _progress_saver(run, on_progress)
        rows_read = read_rows(
            archive,
            now_ms(),
            staging.known,
            settings.image_path,
            settings.read_processes,
            settings.database_url,
            as_csv=staging.as_csv,
        )
        # Closed at once if staging fails, so that the reader's helpers stop then, not
        # whenever the traceback lets go of the generator.
        with closing(rows_read) as chunks:
            for rows in chunks:
                staging.add(rows)
                progress(rows.read, archive.member_count)
        found = staging.resolve()
        _check_loadable(found)
        changes = staging.plan(settings.mode, modified_ms, found)
        with database.atomic():
            _upload_images(archive, staging, store, settings.image_upload_threads)
            staging.apply(run.id, utcnow())
            if changes.writes:
                record_data_change()
            _count(run, found, changes)
            run.save()
            # Read before the commit: an error after it would record a committed load as failed.
            return list(staging.images_to_delete()) if changes.images_deleted else []


def _after_commit(
    run: Run,
    images_to_delete: list[str],
    store: ProcessedStore,
    csv_out: Path | None,
    settings: Settings,
) -> None:
    """Finish a committed load, and record the run as succeeded whatever fails here.

    The store holds the new data by now, so a failed step is a warning on the run, never a
    failed run; the caller reports the warnings. The next load writes output.csv again; an
    image whose deletion failed stays in the bucket, referenced by no user.
    """
    warnings: list[str] = []

    def attempt(step: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception as error:
            warnings.append(f"{step} failed: {type(error).__name__}: {error}")
            return None

    with ThreadPoolExecutor(max_workers=1) as beside:
        # PostgreSQL's VACUUM (ANALYZE) or SQLite's checkpoint, on a connection of its
        # own while output.csv is written rather than after it.
        settling = beside.submit(_settle) if run.inserted or run.updated or run.deleted else None
        _clean_up_and_export(images_to_delete, store, csv_out, settings, attempt)
        if settling is not None:
            attempt("settling the store for its readers", settling.result)
    run.warnings = warnings
    _succeed(run)


def _settle() -> None:
    """`settle` from a thread of its own, whose connection it closes after."""
    try:
        settle(User._meta.table_name, FILTERED_COLUMNS)
    finally:
        database.close()


def _clean_up_and_export(
    images_to_delete: list[str],
    store: ProcessedStore,
    csv_out: Path | None,
    settings: Settings,
    attempt: Callable[[str, Callable[[], object]], object],
) -> None:
    """Delete the images no user has any more, then write output.csv to the store (and
    to `csv_out`).

    The store's output.csv carries the data version it was written from; when that is
    the current one (a reload that changed nothing), it is not written again.
    """
    if images_to_delete:
        keys = [image_key(user_id) for user_id in images_to_delete]
        attempt(
            f"deleting {len(keys)} old images from {store.label}", lambda: store.delete_many(keys)
        )
    # Read like every step after the commit: a store gone now is a warning, not a
    # traceback, and output.csv is then written without a version.
    version = attempt("reading the data version", data_version)
    if csv_out is None and version is not None and _stored_version(store) == version:
        return
    with tempfile.TemporaryDirectory(prefix="zipflow-export-") as scratch:
        output = Path(scratch) / OUTPUT_KEY
        if (
            attempt(
                f"exporting {OUTPUT_KEY}",
                lambda: export_csv(output, settings.database_url, settings.read_processes),
            )
            is not None
        ):
            attempt(
                f"writing {OUTPUT_KEY} to {store.label}",
                lambda: store.put(OUTPUT_KEY, output, "text/csv; charset=utf-8", version),
            )
            if csv_out is not None:
                attempt(f"writing {csv_out}", lambda: shutil.copyfile(output, csv_out))


def _stored_version(store: ProcessedStore) -> str | None:
    """The data version of the store's output.csv; None when it cannot be read either,
    so output.csv is written again (and a store that is away fails that, with a warning)."""
    try:
        return store.version_of(OUTPUT_KEY)
    except Exception as error:
        log.info("could not read the version of %s in %s: %s", OUTPUT_KEY, store.label, error)
        return None


def _check_loadable(found: Found) -> None:
    if found.users:
        return
    if not found.rejections:
        raise ArchiveError("the archive holds no user files (<user_id>.csv)")
    first = found.rejections[0]
    raise ArchiveError(
        f"no valid user in the archive: {len(found.rejections)} files rejected,"
        f" the first {first.member}: {first.reason}"
    )


def _count(run: Run, found: Found, changes: Changes) -> None:
    run.users_in_archive = found.users
    run.inserted, run.updated, run.deleted = changes.inserted, changes.updated, changes.deleted
    run.unchanged, run.kept_newer = changes.unchanged, changes.kept_newer
    run.rejected = len(found.rejections)
    run.rejections = [rejection.as_dict() for rejection in found.rejections]
    run.images = found.images
    run.images_uploaded = changes.images_uploaded
    run.images_deleted = changes.images_deleted
    run.members_read = run.members_total


def _upload_images(archive: Archive, staging: Staging, store: ProcessedStore, threads: int) -> None:
    """Check every image, then upload them in parallel (object stores serve concurrent PUTs
    far faster than sequential ones).

    Uploads replace the live objects before the rows commit, and a rollback cannot take
    them back; reading every image first makes a damaged archive fail before any is replaced.
    """
    for page in staging.uploads():
        for image in page:
            archive.read(image.member)
        archive.release()

    def upload(image: ImageRef) -> None:
        store.put(image_key(image.user_id), archive.read(image.member), "image/png")

    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        for page in staging.uploads():
            for _ in pool.map(upload, page):
                pass
            archive.release()


def _progress_saver(run: Run, on_progress: Progress | None) -> Progress:
    """Record progress on the run before telling the caller, so /runs shows a large load
    moving. Reports come once per chunk of the zip's directory (tens of thousands of
    members), so saving each one costs nothing measurable."""

    def save(read: int, total: int) -> None:
        run.members_read = read
        run.save(only=[Run.members_read])
        if on_progress is not None:
            on_progress(read, total)

    return save


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A load creates millions of small objects (records, rows, tuples) and no cycles;
    the cyclic collector would rescan them all many times over: 0.5 s of a 100k-user load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _epoch_ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)
