"""Subcommands that need no broker or object store (`process`, `demo-data`), and the shape
every entry point shares: parse the command line, read the settings once, run."""

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from shared.config import MODES, ConfigError, Settings
from shared.db import open_database
from shared.demo import write_demo_archive
from shared.models import Run, create_schema
from shared.pipeline import Job, OutputPathError, check_csv_out, process
from shared.storage import LocalStore

PROGRESS_BAR_FROM_MEMBERS = 20_000
# The store holds the new data, but a step after the commit (such as writing --csv) failed.
EXIT_LOADED_WITH_WARNINGS = 3

Command = Callable[[argparse.Namespace, Settings], int]


def run_entry_point(
    parser: argparse.ArgumentParser, command: Command, argv: Sequence[str] | None = None
) -> int:
    """Parse the command line, read the settings once, and run `command` with both.

    A configuration error is reported in one line with exit status 2, before anything
    connects anywhere.
    """
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    return command(args, settings)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "process", help="load a local zip into the store, no MinIO or RabbitMQ"
    )
    run.add_argument("zip", type=Path, help="the archive to load")
    run.add_argument(
        "--mode", choices=MODES, help="snapshot replaces the dataset, merge adds and updates"
    )
    run.add_argument("--csv", type=Path, metavar="OUT.csv", help="also write output.csv here")
    run.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a summary"
    )
    run.set_defaults(handler=process_command)

    demo = subparsers.add_parser("demo-data", help="write a deterministic, realistic demo archive")
    demo.add_argument("out", type=Path, metavar="OUT.zip")
    demo.add_argument("--users", type=int, required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-images", action="store_true", help="csv files only")
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
        print(f"zipflow process: {args.zip} is not a file", file=sys.stderr)
        return 2
    if args.csv is not None:
        try:
            check_csv_out(args.csv, args.zip)
        except OutputPathError as error:
            print(f"zipflow process: --csv {error}", file=sys.stderr)
            return 2
    open_database(settings.database_url)
    create_schema()
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    stat = args.zip.stat()
    job = Job(
        path=args.zip,
        source=str(args.zip.resolve()),
        etag=_md5(args.zip),
        modified=datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None),
        trigger="cli",
    )
    with _progress_bar() as bar:
        run = process(job, settings, store, csv_out=args.csv, on_progress=bar)
    print(json.dumps(run_summary(run), ensure_ascii=False) if args.json else _human_summary(run))
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
    if args.users < 1:
        print("zipflow demo-data: --users must be at least 1", file=sys.stderr)
        return 2
    write_demo_archive(
        args.out, args.users, seed=args.seed, images=not args.no_images, finder=args.finder
    )
    print(f"wrote {args.out} with {args.users} users")
    return 0


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


def _human_summary(run: Run) -> str:
    lines = [
        f"run {run.id} {run.status} in {run.duration_seconds}s ({run.mode}): {run.source}",
        f"  users in archive {run.users_in_archive}: {run.inserted} inserted, {run.updated} updated,"
        f" {run.deleted} deleted, {run.unchanged} unchanged, {run.kept_newer} kept (newer data)",
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
