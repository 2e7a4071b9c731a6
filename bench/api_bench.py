"""How fast the API answers on a 100,000-user store, served by waitress as deployed.

    python bench/api_bench.py [--users 100000] [--seconds 5] [--clients 4]
                              [--database-url URL [--loaded]]

Loads a demo archive through the pipeline (images to a local directory), starts
`python -m api` in its own process, then prints for `/stats?min_age=20&max_age=40` and
`/data?limit=100` the requests per second with several keep-alive clients and the median
latency of one client, and for the full `GET /data` stream its time and the server's
memory before and during it. Client and server share the machine's cores.
"""

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from shared.config import Settings
from shared.db import open_database
from shared.demo import write_demo_archive
from shared.models import create_schema
from shared.pipeline import Job, process
from shared.storage import LocalStore

ENDPOINTS = ("/stats?min_age=20&max_age=40", "/data?limit=100")
LATENCY_REQUESTS = 300


def load_store(users: int, database_url: str, scratch: Path) -> None:
    archive = Path(tempfile.gettempdir()) / f"zipflow-api-bench-{users}.zip"
    if not archive.exists():
        write_demo_archive(archive, users, seed=2)
    settings = replace(Settings(), database_url=database_url, data_dir=scratch)
    open_database(database_url)
    create_schema()
    started = time.perf_counter()
    run = process(
        Job(archive, str(archive)), settings, LocalStore(scratch, settings.processed_bucket)
    )
    assert run.status == "succeeded", run.error
    print(
        f"store: {run.users_in_archive} users loaded in {time.perf_counter() - started:.1f} s ({database_url})"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(database_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "ZIPFLOW_DATABASE_URL": database_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _ = get(http.client.HTTPConnection("127.0.0.1", port), "/ready")
            if status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the API did not become ready in 30 s")


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def median_latency_ms(port: int, path: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    timings = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        status, _ = get(connection, path)
        timings.append(time.perf_counter() - started)
        assert status == 200, status
    connection.close()
    return statistics.median(timings) * 1000


def requests_per_second(port: int, path: str, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < stop:
            status, _ = get(connection, path)
            assert status == 200, status
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stream_all(port: int, pid: int) -> tuple[float, int, float, float]:
    """Seconds to receive all of GET /data, its size, and server RSS before and at peak."""
    before = rss_mb(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    status, body = get(connection, "/data")
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    assert status == 200, status
    return elapsed, len(json.loads(body)), before, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of each throughput run"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument(
        "--loaded", action="store_true", help="the store at --database-url is loaded already"
    )
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        if not (args.loaded and args.database_url):
            load_store(args.users, database_url, Path(scratch))
        port = free_port()
        server = start_server(database_url, port)
        try:
            print(
                f"server: python -m api (waitress, {Settings().api_threads} threads), pid {server.pid}"
            )
            for path in ENDPOINTS:
                median_latency_ms(port, path)  # warm up caches and connections
                latency = median_latency_ms(port, path)
                rate = requests_per_second(port, path, args.clients, args.seconds)
                print(
                    f"GET {path}: {rate:.0f} req/s ({args.clients} clients), median {latency:.1f} ms (1 client)"
                )
            for attempt in (1, 2):
                seconds, users, before, peak = stream_all(port, server.pid)
                print(
                    f"GET /data (all {users} users, run {attempt}): {seconds:.2f} s, "
                    f"server RSS {before:.0f} MB before, {peak:.0f} MB peak"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine skews every figure)"
    )


if __name__ == "__main__":
    main()
