"""Fifty readers while a million-user load writes: errors, latencies, and whether they wait.

    python bench/concurrency_bench.py [--users 100000] [--load-users 1000000]
                                      [--clients 50] [--seconds 30] [--database-url URL]

Fills a store with `--users` demo users (bench/store_fill.py), starts `python -m api` on
it, and runs `--clients` keep-alive clients, each asking in turn for `/stats` (with random
filters), `/data?limit=100`, `/data/{a random user}` and `/runs`, for `--seconds`: first
with nothing else running (the reference), then while `zipflow process` loads a
`--load-users` archive into the same store (the demo archive of bench/pipeline_bench.py,
built once), from the load's start until it has committed and ended (at least
`--seconds`). Prints for each phase the requests, the errors, and the median, p99 and
slowest latency per endpoint. Readers, server and loader share the machine's cores.
"""

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_bench import free_port, get, start_server  # bench/api_bench.py, beside this script
from pipeline_bench import bench_archive, cpu_model
from store_fill import fill_users

from shared.db import open_database
from shared.models import create_schema

KINDS = ("/stats", "/data?limit=100", "/data/{id}", "/runs")
STATS_QUERIES = ("", "?min_age=20&max_age=40", "?is_image_exists=true", "?max_age=30")


def request_path(kind: str, rng: random.Random, users: int) -> str:
    if kind == "/stats":
        return "/stats" + rng.choice(STATS_QUERIES)
    if kind == "/data/{id}":
        return f"/data/{1000 + rng.randrange(users)}"
    return kind


def read_mix(
    port: int, clients: int, seconds: float, users: int, busy: Callable[[], bool] = bool
) -> dict[str, Any]:
    """The latencies per kind of request and the errors, for `seconds` and while `busy()`."""
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    started = time.perf_counter()

    def client(number: int) -> None:
        rng = random.Random(number)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: dict[str, list[float]] = defaultdict(list)
        turn = number
        while time.monotonic() < stop or busy():
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            path = request_path(kind, rng, users)
            started = time.perf_counter()
            try:
                status, _ = get(connection, path)
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(f"{path}: {error!r}")
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine[kind].append(time.perf_counter() - started)
            if status != 200:
                with lock:
                    errors.append(f"{path}: HTTP {status}")
        connection.close()
        with lock:
            for kind, values in mine.items():
                timings[kind].extend(values)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"timings": timings, "errors": errors, "seconds": time.perf_counter() - started}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(phase: str, result: dict[str, Any]) -> None:
    timings, errors, seconds = result["timings"], result["errors"], result["seconds"]
    every = [value for values in timings.values() for value in values]
    print(
        f"{phase}, {seconds:.0f} s: {len(every)} requests ({len(every) / seconds:.0f}/s), "
        f"{len(errors)} errors; "
        f"all: median {statistics.median(every) * 1000:.1f} ms, "
        f"p99 {percentile(every, 0.99) * 1000:.1f} ms, slowest {max(every) * 1000:.0f} ms"
    )
    for kind in KINDS:
        values = timings[kind]
        print(
            f"  {kind:16} {len(values):6} requests, median {statistics.median(values) * 1000:6.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms, slowest {max(values) * 1000:6.0f} ms"
        )
    for error in errors[:5]:
        print(f"  error: {error}")


def start_load(archive: Path, database_url: str, scratch: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ZIPFLOW_DATABASE_URL": database_url,
        "ZIPFLOW_DATA_DIR": str(scratch / "data"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "zipflow", "process", str(archive), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def wait_until_running(port: int, loader: subprocess.Popen) -> None:
    """Until /runs shows the load running, so the readers start while it reads and writes."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    while loader.poll() is None:
        status, body = get(connection, "/runs?limit=1")
        runs = json.loads(body) if status == 200 else []
        if runs and runs[0]["status"] == "running":
            return
        time.sleep(0.2)
    raise RuntimeError("the load ended before the readers started")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users in the store read")
    parser.add_argument("--load-users", type=int, default=1_000_000, help="users in the load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    archive = bench_archive(args.load_users, images=False, plain=True)
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        open_database(database_url)
        create_schema()
        fill_users(args.users)
        print(f"store: {args.users} users ({database_url}); load: {archive.name}")
        port = free_port()
        server = start_server(database_url, port)
        try:
            reference = read_mix(port, args.clients, args.seconds, args.users)
            report(f"{args.clients} clients, no load running", reference)
            loader = start_load(archive, database_url, Path(scratch))
            load_started = time.perf_counter()
            wait_until_running(port, loader)
            # Until the load has committed and ended, and at least --seconds.
            during = read_mix(
                port, args.clients, args.seconds, args.users, lambda: loader.poll() is None
            )
            report(f"{args.clients} clients, from the load's start to its end", during)
            output, _ = loader.communicate()
            run = json.loads(output)
            print(
                f"load: {run['status']}, {run['users_in_archive']} users in "
                f"{time.perf_counter() - load_started:.1f} s (zipflow process, same store)"
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine skews every figure)"
    )


if __name__ == "__main__":
    main()
