"""Subcommands that need no broker (`process`, `demo-data`), and the shape every entry
point shares: parse the command line, read the settings once, run, and turn every
foreseeable mistake into one line on stderr."""

import argparse
import hashlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import peewee
import urllib3.exceptions
from minio.error import MinioException
from tqdm import tqdm

from shared.config import MODES, ConfigError, Settings, store_label
from shared.demo import write_demo_archive
from shared.models import Run, StoreError, open_store, utcnow
from shared.pipeline import Job, OutputPathError, check_csv_out, process
from shared.storage import NeedsMinio, object_store_label, processed_store

PROGRESS_BAR_FROM_MEMBERS = 20_000
# The store holds the new data, but a step after the commit (such as writing --csv) failed.
EXIT_LOADED_WITH_WARNINGS = 3
EXIT_USAGE = 2
# The store or the object store failing during a load: worth one line and another try.
TRANSIENT = (peewee.PeeweeException, MinioException, urllib3.exceptions.HTTPError, OSError)
EXIT_BUG = 70
BUG_REPORT = (
    "this is a bug in zipflow, not a mistake of yours: please report it, with the traceback"
    " above and the command you ran, in the issue tracker of the zipflow repository"
)

Command = Callable[[argparse.Namespace, Settings], int]


def run_entry_point(
    parser: argparse.ArgumentParser, command: Command, argv: Sequence[str] | None = None
) -> int:
    """Parse the command line, read the settings once, and run `command` with both.

    A configuration error is reported in one line with exit status 2, before anything
    connects anywhere; so is a store that cannot be opened (status 1) and a feature that
    needs MinIO without it (status 2). Anything else is a bug: its traceback is printed,
    with where to report it.
    """
    args = parser.parse_args(argv)
    name = " ".join(filter(None, (parser.prog, getattr(args, "command", None))))
    try:
        settings = Settings.from_env()
        return command(args, settings)
    except ConfigError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except NeedsMinio as error:
        print(f"{name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"{name}: {BUG_REPORT}", file=sys.stderr)
        return EXIT_BUG


def quiet_retries() -> None:
    """For a command whose stderr is its answer: the MinIO SDK's HTTP pool logs a warning
    for every retry, and the command's one line says the outcome anyway."""
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "process",
        help="load a local zip into the store (no MinIO or RabbitMQ needed)",
        description="Load a local zip into the store named by ZIPFLOW_DATABASE_URL and print"
        " what changed. Exit status: 0 loaded, 1 the run failed and changed nothing,"
        " 2 a usage error found before anything changed, 3 loaded but a step after the"
        " commit (such as writing --csv) failed.",
    )
    run.add_argument("zip", type=Path, metavar="ZIP", help="the archive to load")
    run.add_argument(
        "--mode",
        choices=MODES,
        help="snapshot: the archive is the whole dataset, users missing from it are removed;"
        " merge: users are added or updated, never removed (default: ZIPFLOW_MODE)",
    )
    run.add_argument(
        "--as-of",
        type=_moment,
        metavar="TIME",
        help="the moment the archive's data is from, as 2026-11-28 or 2026-11-28T17:00:00"
        " (UTC); in merge mode a user stored from a newer archive is kept (default: now)",
    )
    run.add_argument(
        "--csv", type=Path, metavar="OUT.csv", help="also write the store as output.csv here"
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a summary"
    )
    run.set_defaults(handler=process_command)

    demo = subparsers.add_parser(
        "demo-data",
        help="write a realistic demo archive to try zipflow with",
        description="Write a deterministic, realistic archive: one folder, most users with a"
        " png, macOS noise entries. The same arguments give the same bytes.",
    )
    demo.add_argument("out", type=Path, metavar="OUT.zip", help="the archive to write")
    demo.add_argument("--users", type=int, required=True, metavar="N", help="how many users")
    demo.add_argument(
        "--seed", type=int, default=0, metavar="S", help="another seed, other users (default 0)"
    )
    demo.add_argument("--no-images", action="store_true", help="csv files only, no png")
    demo.add_argument(
        "--finder",
        action="store_true",
        help="give every entry its __MACOSX/ AppleDouble partner, as macOS Finder does",
    )
    demo.set_defaults(handler=demo_command)


def process_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.mode:
        settings = replace(settings, mode=args.mode)
    if not args.zip.is_file():
        what = "a directory" if args.zip.is_dir() else "not found"
        print(f"zipflow process: {args.zip} is {what}; give a .zip file", file=sys.stderr)
        return EXIT_USAGE
    if args.csv is not None:
        try:
            check_csv_out(args.csv, args.zip)
        except OutputPathError as error:
            print(f"zipflow process: --csv {error}", file=sys.stderr)
            return EXIT_USAGE
    quiet_retries()
    open_store(settings.database_url)
    store = processed_store(settings)
    job = Job(
        path=args.zip,
        source=str(args.zip.resolve()),
        etag=_md5(args.zip),
        modified=args.as_of or utcnow(),
        trigger="cli",
    )
    try:
        with _progress_bar() as bar:
            run = process(job, settings, store, csv_out=args.csv, on_progress=bar)
    except TRANSIENT as error:
        # process() recorded the run as failed; the store is unchanged. Other errors are
        # bugs, for run_entry_point to show with their traceback.
        print(
            f"zipflow process: failed, the store is unchanged: {type(error).__name__}:"
            f" {' '.join(str(error).split())}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(run_summary(run), ensure_ascii=False))
    else:
        print(_human_summary(run, settings))
    if run.status != "succeeded":
        print(f"zipflow process: failed: {run.error}", file=sys.stderr)
        return 1
    if run.warnings:
        print(
            f"zipflow process: run {run.id} loaded the store, but {'; '.join(run.warnings)}",
            file=sys.stderr,
        )
        return EXIT_LOADED_WITH_WARNINGS
    return 0


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    problem = _demo_target_problem(args)
    if problem:
        print(f"zipflow demo-data: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        write_demo_archive(
            args.out, args.users, seed=args.seed, images=not args.no_images, finder=args.finder
        )
    except OSError as error:
        print(f"zipflow demo-data: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} with {args.users} users")
    return 0


def _demo_target_problem(args: argparse.Namespace) -> str | None:
    if args.users < 1:
        return "--users must be at least 1"
    if args.out.is_dir():
        return f"{args.out} is a directory; name the archive to write, such as {args.out / 'users.zip'}"
    if not args.out.parent.is_dir():
        return f"the folder {args.out.parent} does not exist; create it or name another"
    return None


def _moment(text: str) -> datetime:
    """--as-of: an ISO date or date and time, read as UTC unless it says otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time such as 2026-11-28 or 2026-11-28T17:00:00"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def run_summary(run: Run) -> dict[str, object]:
    """The run's outcome as plain data, for --json."""
    return {
        "run_id": run.id,
        "status": run.status,
        "source": run.source,
        "mode": run.mode,
        **run.counts(),
        "rejections": run.rejections,
        "error": run.error,
        "warnings": run.warnings,
        "duration_seconds": run.duration_seconds,
    }


def _human_summary(run: Run, settings: Settings) -> str:
    lines = [
        f"run {run.id} {run.status} in {run.duration_seconds}s ({run.mode}): {run.source}",
        f"  into {store_label(settings.database_url)}, images in {object_store_label(settings)}",
        f"  users in archive {run.users_in_archive}: {run.inserted} inserted, {run.updated} updated,"
        f" {run.deleted} deleted, {run.unchanged} unchanged, {run.kept_newer} kept (newer data)",
    ]
    if run.kept_newer:
        lines.append(
            f"    kept (newer data): {run.kept_newer} users were stored from an archive newer"
            " than this one, and merge mode keeps the newer row (--as-of sets this one's moment)"
        )
    lines += [
        f"  images {run.images}: {run.images_uploaded} written, {run.images_deleted} deleted",
        f"  rejected {run.rejected}",
    ]
    lines += [f"    {r['member']}: {r['reason']}" for r in run.rejections]
    if run.error:
        lines.append(f"  error: {run.error}")
    lines += [f"  warning: {warning}" for warning in run.warnings]
    return "\n".join(lines)


def _md5(path: Path) -> str:
    """The content hash, like S3's ETag of a single-part upload."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _progress_bar:
    """A tqdm bar on stderr for large archives, only when stderr is a terminal."""

    def __enter__(self) -> "_progress_bar":
        self.bar: tqdm | None = None
        return self

    def __call__(self, read: int, total: int) -> None:
        if self.bar is None:
            if total < PROGRESS_BAR_FROM_MEMBERS or not sys.stderr.isatty():
                return
            self.bar = tqdm(total=total, unit="files", file=sys.stderr, desc="reading")
        self.bar.update(read - self.bar.n)
        if read >= total:
            self.bar.close()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
