"""Reading an archive on several cores: the chunks of its central directory are shared out
between the loading process and helper processes, and come back in the directory's order.

Reading is pure Python and bound by the processor, so threads would take turns; processes
run at once. Each helper opens the archive itself (and the store, for the fingerprints of
a reload), reads every `parts`-th chunk, stepping over the others by their lengths, and
makes it into staging rows, so the loading process only writes them. The rows travel back
as plain tuples (which unpickle in half the time records take), or for PostgreSQL as the
CSV text its COPY reads (which the loading process would otherwise write itself), through
a queue that holds a few chunks at most, so memory stays bounded whatever the archive's
size. The loading process hands the chunks on in order, so the first error in reading
order is the one reported. Between reads, a load may give a helper other work
(`in_helper`): half of output.csv, say (`shared.export`).
"""

import gc
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from multiprocessing.queues import Queue
from pathlib import Path

from shared.archive import (
    DIRECTORY_CHUNK,
    Archive,
    ArchiveError,
    Share,
    check_unpacked_total,
    open_archive,
)
from shared.config import ArchiveLimits
from shared.db import database, open_database
from shared.staging import Rows, staged_rows, stored_fingerprints

Known = Callable[[list[str]], Mapping[str, str]]
ImagePath = Callable[[str], str]
# Chunks a helper may read ahead of the staging; each holds the records of up to
# DIRECTORY_CHUNK members.
QUEUED_CHUNKS = 2
# How often a reader waiting for a chunk checks that its helper is still running.
POLL_SECONDS = 1.0


class HelperFailed(Exception):
    """A helper process stopped, or failed for a reason other than the archive itself."""


class Helper:
    """A helper process that reads shares of archives for this process, one load at a time.

    Helpers live as long as the process: starting one costs a tenth of a second (the child
    imports the main module again), a third of what it saves on a load of 100,000 users.
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self.tasks: Queue = context.Queue()
        self.rows: Queue = context.Queue(QUEUED_CHUNKS)
        self.process = context.Process(
            target=_serve, args=(self.tasks, self.rows), name="zipflow-reader", daemon=True
        )
        self.process.start()

    def receive(self) -> Rows | None:
        """The next chunk's rows, or None when the share is done; the helper's error is
        raised here, as if this process had read the chunk."""
        while True:
            try:
                message = self.rows.get(timeout=POLL_SECONDS)
                break
            except queue.Empty:
                if self.process.is_alive():
                    continue
            # It may have sent its last message just before it ended.
            try:
                message = self.rows.get(timeout=POLL_SECONDS)
                break
            except queue.Empty:
                raise HelperFailed(
                    "the helper process reading the archive stopped"
                    f" (exit code {self.process.exitcode})"
                ) from None
        if isinstance(message, Exception):
            raise message
        return message

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()
        self.tasks.close()
        self.rows.close()


# This process's helpers, and the lock that gives them to one load at a time (the worker
# runs one load per consumer thread, and tests run several consumers in one process).
_helpers: list[Helper] = []
_helpers_lock = threading.Lock()


def read_rows(
    archive: Archive,
    now_ms: int,
    known: Known | None,
    image_path: ImagePath,
    processes: int,
    database_url: str,
    chunk: int = DIRECTORY_CHUNK,
    as_csv: bool = False,
) -> Iterator[Rows]:
    """The staging rows of `archive.scan(now_ms, known, chunk)`, read by up to `processes`
    processes; `as_csv` as in `staged_rows`.

    An archive of one chunk is read here alone, and so is every archive while another load
    of this process has the helpers. The helpers look `known` up in the store at
    `database_url` themselves.
    """
    chunks = -(-archive.member_count // chunk)
    parts = min(processes, chunks)
    if parts < 2 or not _helpers_lock.acquire(blocking=False):
        for judged in archive.scan(now_ms, known, chunk):
            yield staged_rows(judged, image_path, as_csv)
        return
    finished = False
    try:
        helpers = _ready_helpers(parts - 1)
        for part, helper in enumerate(helpers, start=1):
            helper.tasks.put(
                (
                    _read_share,
                    (
                        archive.path,
                        archive.limits,
                        database_url if known is not None else None,
                        now_ms,
                        image_path,
                        as_csv,
                        chunk,
                        (part, parts),
                    ),
                )
            )
        mine = archive.scan(now_ms, known, chunk, (0, parts))
        unpacked = 0
        for index in range(chunks):
            part = index % parts
            if part == 0:
                rows = staged_rows(next(mine), image_path, as_csv)
            else:
                rows = helpers[part - 1].receive()
            if rows is None:
                raise HelperFailed("a helper process ended its share of the archive too early")
            # Each process checks the bytes its own share unpacks to; the sum is checked here.
            unpacked += rows.unpacked
            check_unpacked_total(unpacked, archive.limits)
            yield rows
        for helper in helpers:
            if helper.receive() is not None:
                raise HelperFailed("a helper process read more of the archive than its share")
        finished = True
    finally:
        _release_helpers(finished)


@contextmanager
def in_helper(work: Callable[..., None], *args: object) -> Iterator[bool]:
    """Run `work(*args)` in a helper process while the body of the `with` runs, and wait
    for it to finish at the end; its error is raised then, as if it were the body's.

    Yields whether a helper took the work: it does not while another load of this process
    has the helpers, and the body then does all of it itself. `work` is a module-level
    function (it is sent by name) that reports nothing back.
    """
    if not _helpers_lock.acquire(blocking=False):
        yield False
        return
    finished = False
    try:
        [helper] = _ready_helpers(1)
        helper.tasks.put((_run, (work, args)))
        yield True
        if helper.receive() is not None:
            raise HelperFailed("a helper process sent rows for work that sends none")
        finished = True
    finally:
        _release_helpers(finished)


def _release_helpers(finished: bool) -> None:
    """Give the helpers back; after work that did not finish, stop them first, as one
    may still be working, or blocked sending, and new ones start clean."""
    if not finished:
        for helper in _helpers:
            helper.stop()
        _helpers.clear()
    _helpers_lock.release()


def _ready_helpers(count: int) -> list[Helper]:
    """`count` running helpers, started where missing; call holding `_helpers_lock`."""
    for helper in [helper for helper in _helpers if not helper.process.is_alive()]:
        helper.stop()
        _helpers.remove(helper)
    while len(_helpers) < count:
        _helpers.append(Helper())
    return _helpers[:count]


def _serve(tasks: Queue, outbox: Queue) -> None:
    """A helper process's life: do the work it is given, one task after the other (a
    share of an archive to read, or work from `in_helper`), each ended by a None.

    The cyclic garbage collector stays off, as in a loading process (a read makes millions
    of small objects and no cycles).
    """
    gc.disable()
    while True:
        try:
            task = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            _stop_if_orphaned()
            continue
        work, args = task
        work(*args, outbox)
        _send(outbox, None)


def _send(outbox: Queue, message: object) -> None:
    """Put `message` in the queue, waiting while it is full, as long as the loading
    process lives."""
    while True:
        try:
            outbox.put(message, timeout=POLL_SECONDS)
            return
        except queue.Full:
            _stop_if_orphaned()


def _stop_if_orphaned() -> None:
    """End this helper once the process it reads for is gone (killed, say): nobody would
    ever give it work again or take what it sends."""
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        raise SystemExit(0)


def _run(work: Callable[..., None], args: tuple, outbox: Queue) -> None:
    """Run work for `in_helper`, sending its error on, if any."""
    try:
        work(*args)
    except Exception as error:
        _send(outbox, HelperFailed(f"{work.__name__}: {type(error).__name__}: {error}"))


def _read_share(
    path: Path,
    limits: ArchiveLimits,
    database_url: str | None,
    now_ms: int,
    image_path: ImagePath,
    as_csv: bool,
    chunk: int,
    share: Share,
    outbox: Queue,
) -> None:
    """Read one share of an archive and send each chunk's rows on, or the error."""
    try:
        known = None
        if database_url is not None:
            open_database(database_url)
            known = stored_fingerprints
        with open_archive(path, limits) as archive:
            for judged in archive.scan(now_ms, known, chunk, share):
                _send(outbox, staged_rows(judged, image_path, as_csv))
    except ArchiveError as error:
        _send(outbox, ArchiveError(str(error)))
    except Exception as error:
        _send(outbox, HelperFailed(f"reading {path}: {type(error).__name__}: {error}"))
    finally:
        if database.obj is not None:
            database.close()
