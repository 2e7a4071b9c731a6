"""How fast one archive goes from zip to store to output.csv.

    python bench/pipeline_bench.py [--users 100000] [--images] [--plain] [--runs 3]

Builds a demo archive once (cached in the temp directory), then loads it into a fresh
SQLite store several times and prints the median and the best of each phase and of the
whole load (on a shared machine the best is the steadier figure).
The archive is shaped like a real upload made with macOS Finder, every entry with its
`__MACOSX/` partner (100,000 users without images: 200,000 members); `--plain` leaves the
partners out. Images are written to a local directory, not to an object store.
"""

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from shared.archive import now_ms, open_archive
from shared.config import Settings
from shared.db import open_database
from shared.demo import write_demo_archive
from shared.models import create_schema
from shared.pipeline import Job, export_csv, process
from shared.storage import LocalStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--images", action="store_true", help="give 90%% of users a png")
    parser.add_argument("--plain", action="store_true", help="no __MACOSX/ partner entries")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    shape = f"{'img' if args.images else 'csv'}-{'plain' if args.plain else 'finder'}"
    archive = Path(tempfile.gettempdir()) / f"zipflow-bench-{args.users}-{shape}.zip"
    if not archive.exists():
        write_demo_archive(archive, args.users, seed=1, images=args.images, finder=not args.plain)
    settings = Settings()
    with open_archive(archive, settings.limits) as opened:
        members = len(opened.members)
    print(f"archive: {args.users} users, {members} members, {archive.stat().st_size / 1e6:.1f} MB")
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )

    phases: dict[str, list[float]] = {
        "read+validate": [],
        "first load": [],
        "reload (no change)": [],
        "export": [],
    }
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            run_settings = replace(
                settings, database_url=f"sqlite:///{scratch}/bench.db", data_dir=Path(scratch)
            )
            open_database(run_settings.database_url)
            create_schema()
            store = LocalStore(run_settings.data_dir, run_settings.processed_bucket)

            started = time.perf_counter()
            with open_archive(archive, settings.limits) as opened:
                opened.read_contents(now_ms())
            phases["read+validate"].append(time.perf_counter() - started)

            for phase in ("first load", "reload (no change)"):
                started = time.perf_counter()
                run = process(Job(archive, str(archive)), run_settings, store)
                phases[phase].append(time.perf_counter() - started)
                assert run.status == "succeeded", run.error

            started = time.perf_counter()
            export_csv()
            phases["export"].append(time.perf_counter() - started)

    for phase, seconds in phases.items():
        print(
            f"{phase:>20}: median {statistics.median(seconds):.2f} s,"
            f" best {min(seconds):.2f} s over {len(seconds)} runs"
        )


if __name__ == "__main__":
    main()
