"""Large loads: time and peak memory of a first load and a reload, on SQLite and PostgreSQL.

    python bench/load_bench.py --users 1000000 [--plain]
                               [--postgres postgresql://postgres@127.0.0.1:5432/test]
    ZIPFLOW_MAX_MEMBERS=10000100 python bench/load_bench.py --users 10000000 --plain

Builds the demo archive once (cached in the temp directory; csv only, `--plain` without
the `__MACOSX/` partners), then runs each load in a process of its own, so the peak
resident memory it reports (VmHWM: the process's own pages, the archive's mapped pages
included) belongs to that load alone. An archive over the default member limit
(3,000,000) needs the limit raised by configuration, as above; the settings come from
the environment like any zipflow process's. Images are left out: they are bound by the
object store, not by the load.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from pipeline_bench import bench_archive, fresh_postgres  # bench/, beside this script

from shared.config import Settings
from shared.db import open_database
from shared.models import create_schema
from shared.pipeline import Job, process
from shared.storage import LocalStore


def load_once(archive: Path, database_url: str, data_dir: Path) -> dict[str, object]:
    """One load in this process: its seconds, its peak memory and its run's counts."""
    settings = replace(Settings.from_env(), database_url=database_url, data_dir=data_dir)
    open_database(database_url)
    create_schema()
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    started = time.perf_counter()
    run = process(Job(archive, str(archive)), settings, store)
    seconds = time.perf_counter() - started
    peak_mb = peak_resident_kb("self") / 1024
    helpers_mb = sum(peak_resident_kb(pid) for pid in descendants(os.getpid())) / 1024
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "helpers_mb": helpers_mb,
        "status": run.status,
        **run.counts(),
    }


def peak_resident_kb(pid: int | str) -> int:
    """A process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent through fork and exec, so a child would report the parent's peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def descendants(pid: int) -> list[int]:
    """The processes started under `pid`: the reader's fork server and its helpers."""
    children = [
        int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def in_child(archive: Path, database_url: str, data_dir: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", str(archive), database_url, str(data_dir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        archive, url, data_dir = sys.argv[2:5]
        print(json.dumps(load_once(Path(archive), url, Path(data_dir))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="no __MACOSX/ partner entries")
    parser.add_argument("--postgres", metavar="URL", help="also load into this PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--first-only", action="store_true", help="no reload")
    args = parser.parse_args()

    archive = bench_archive(args.users, images=False, plain=args.plain)
    print(f"archive: {args.users} users, {archive.stat().st_size / 1e6:.0f} MB, {archive}")
    with tempfile.TemporaryDirectory(prefix="zipflow-load-bench-") as scratch:
        stores = [] if args.no_sqlite else [("SQLite", f"sqlite:///{scratch}/bench.db")]
        for name, url in stores:
            report(name, archive, url, Path(scratch), args.first_only)
        if args.postgres:
            with fresh_postgres(args.postgres) as url:
                report("PostgreSQL", archive, url, Path(scratch), args.first_only)


def report(name: str, archive: Path, url: str, scratch: Path, first_only: bool) -> None:
    for phase in ("first load",) if first_only else ("first load", "reload"):
        result = in_child(archive, url, scratch)
        print(
            f"{name:>10} {phase:>10}: {result['seconds']:7.1f} s, peak RSS {result['peak_mb']:5.0f} MB"
            f" (reader helpers and their fork server: {result['helpers_mb']:.0f} MB more),"
            f" {result['status']}, inserted {result['inserted']}, unchanged {result['unchanged']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
