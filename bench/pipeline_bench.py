"""How fast one archive goes from zip to store to output.csv, beside the straightforward load.

    python bench/pipeline_bench.py [--users 100000] [--images] [--plain] [--runs 3]
                                   [--postgres postgresql://postgres@127.0.0.1:5432/test]

Builds a demo archive once (cached in the temp directory), then, in each run, loads it
with the straightforward `zipfile` + `csv` + `executemany` code of `bench/reference.py`
(first load, then the same again as its reload) and with zipflow (first load, then a
reload of the unchanged archive; settings from the ZIPFLOW_* variables, so
ZIPFLOW_READ_PROCESSES=1 reads in one process), each into a fresh SQLite store, and with `--postgres`
into a fresh PostgreSQL schema too. It prints the median and the best of each phase (on
a shared machine the best is the steadier figure) and zipflow's ratio to the reference.
The archive is shaped like a real upload made with macOS Finder, every entry with its
`__MACOSX/` partner (100,000 users without images: 200,000 members); `--plain` leaves the
partners out. Images are written to a local directory, not to an object store.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg2
from reference import reference_load  # bench/reference.py, beside this script

from shared.archive import open_archive
from shared.config import Settings
from shared.db import database, open_database
from shared.demo import write_demo_archive
from shared.models import build_user_indexes, create_schema
from shared.pipeline import Job, process
from shared.storage import LocalStore


def bench_archive(users: int, images: bool, plain: bool) -> Path:
    """The demo archive for these arguments, written once and kept in the temp directory."""
    shape = f"{'img' if images else 'csv'}-{'plain' if plain else 'finder'}"
    archive = Path(tempfile.gettempdir()) / f"zipflow-bench-{users}-{shape}.zip"
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        write_demo_archive(partial, users, seed=1, images=images, finder=not plain)
        partial.rename(archive)
    return archive


def cpu_model() -> str:
    """The processor's name as the kernel reports it: the figures depend on it (an AMD EPYC
    host runs the same Python about twice as slow as an Intel Xeon one)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


@contextmanager
def fresh_postgres(url: str) -> Iterator[str]:
    """A private, empty schema in the PostgreSQL database at `url`, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        if database.obj is not None:
            database.close()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def zipflow_loads(
    archive: Path, settings: Settings, database_url: str, scratch: str
) -> list[float]:
    """zipflow's first load and reload of `archive` into the empty store at `database_url`."""
    run_settings = replace(settings, database_url=database_url, data_dir=Path(scratch))
    open_database(database_url)
    create_schema()
    store = LocalStore(run_settings.data_dir, run_settings.processed_bucket)
    seconds = []
    for _ in ("first load", "reload"):
        started = time.perf_counter()
        run = process(Job(archive, str(archive)), run_settings, store)
        seconds.append(time.perf_counter() - started)
        assert run.status == "succeeded", run.error
    database.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--images", action="store_true", help="give 90%% of users a png")
    parser.add_argument("--plain", action="store_true", help="no __MACOSX/ partner entries")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also load into this PostgreSQL")
    args = parser.parse_args()

    archive = bench_archive(args.users, args.images, args.plain)
    settings = Settings.from_env()
    with open_archive(archive, settings.limits) as opened:
        members = opened.member_count
    print(f"archive: {args.users} users, {members} members, {archive.stat().st_size / 1e6:.1f} MB")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"zipflow reads with {settings.read_processes} processes (ZIPFLOW_READ_PROCESSES)")

    phases: dict[str, list[float]] = {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            reference_db = f"{scratch}/reference.db"
            open_database(f"sqlite:///{reference_db}")
            create_schema()
            # zipflow's first load builds the users' indexes; the reference's upsert
            # needs them from the start, as a store that holds users has them.
            build_user_indexes()
            database.close()
            for phase in ("reference first load", "reference reload"):
                seconds = timed(reference_load, str(archive), reference_db)
                phases.setdefault(phase, []).append(seconds)
            first, again = zipflow_loads(
                archive, settings, f"sqlite:///{scratch}/zipflow.db", scratch
            )
            phases.setdefault("SQLite first load", []).append(first)
            phases.setdefault("SQLite reload", []).append(again)
            if args.postgres:
                with fresh_postgres(args.postgres) as url:
                    first, again = zipflow_loads(archive, settings, url, scratch)
                phases.setdefault("PostgreSQL first load", []).append(first)
                phases.setdefault("PostgreSQL reload", []).append(again)

    for phase, seconds in phases.items():
        print(
            f"{phase:>22}: median {statistics.median(seconds):6.2f} s,"
            f" best {min(seconds):6.2f} s over {len(seconds)} runs"
        )

    def median(phase: str) -> float:
        return statistics.median(phases[phase])

    reference, reference_reload = median("reference first load"), median("reference reload")
    print("ratios of medians (target: first load <= 0.40, reload <= 0.25 of the reference):")
    print(
        f"  SQLite first load / reference first load: {median('SQLite first load') / reference:.2f}"
    )
    print(f"  SQLite reload / reference first load:     {median('SQLite reload') / reference:.2f}")
    print(
        f"  SQLite reload / reference reload:         {median('SQLite reload') / reference_reload:.2f}"
    )
    if args.postgres:
        print(
            "  PostgreSQL first load / SQLite first load (target <= 1.30):"
            f" {median('PostgreSQL first load') / median('SQLite first load'):.2f}"
        )


if __name__ == "__main__":
    main()
