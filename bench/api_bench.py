"""How fast the API answers, served by waitress as deployed, on 100,000 users or a million.

    python bench/api_bench.py [--users 100000] [--fill load|sql] [--seconds 5] [--clients 4]
                              [--database-url URL [--loaded]]

Fills the store (`load`: a demo archive through the pipeline, images to a local directory;
`sql`: the same kind of rows written straight through SQL, bench/store_fill.py, for large
stores), starts `python -m api` in its own process, then prints for each endpoint below the
requests per second with several keep-alive clients and the median latency of one client.
Beside the /stats figures it prints the reference: the same statistics computed by the
direct SQL (what /stats ran before the per-load aggregate), timed in this process on the
same store. Then the first /stats after the server starts (the aggregate's build), a
revalidation answered 304, and the full `GET /data` stream: its time and the server's
memory before and during it. Client and server share the machine's cores.

It also measures what the Prometheus middleware adds to a request: `GET /health` called
in-process (WSGI, no sockets) on an app with the middleware and on the same app without
it, in alternating rounds; the difference is the middleware's cost per request.
"""

import argparse
import http.client
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

import falcon
import falcon.testing
from pipeline_bench import cpu_model  # bench/, beside this script
from store_fill import fill_users  # bench/store_fill.py, beside this script

from api.metrics import ApiMetrics, MetricsMiddleware
from api.resources import HealthResource
from shared.ages import utc_today
from shared.config import Settings
from shared.db import open_database
from shared.demo import write_demo_archive
from shared.models import create_schema
from shared.pipeline import Job, process
from shared.queries import UserFilter, user_stats
from shared.storage import LocalStore

ENDPOINTS = (
    "/stats",
    "/stats?min_age=20&max_age=40",
    "/stats?is_image_exists=true&min_age=20&max_age=40",
    "/stats/ages",
    "/data?limit=100",
    "/data/1500",
    "/runs?limit=20",
)
# The filters of the /stats endpoints above, for the direct SQL reference.
STATS_FILTERS = {
    "/stats": UserFilter(),
    "/stats?min_age=20&max_age=40": UserFilter(min_age=20, max_age=40),
    "/stats?is_image_exists=true&min_age=20&max_age=40": UserFilter(
        has_image=True, min_age=20, max_age=40
    ),
}
LATENCY_REQUESTS = 300
REFERENCE_RUNS = 15


def load_store(users: int, database_url: str, scratch: Path, fill: str) -> None:
    open_database(database_url)
    create_schema()
    started = time.perf_counter()
    if fill == "sql":
        fill_users(users)
        how = "written through SQL (bench/store_fill.py)"
    else:
        archive = Path(tempfile.gettempdir()) / f"zipflow-api-bench-{users}.zip"
        if not archive.exists():
            write_demo_archive(archive, users, seed=2)
        settings = replace(Settings(), database_url=database_url, data_dir=scratch)
        store = LocalStore(scratch, settings.processed_bucket)
        run = process(Job(archive, str(archive)), settings, store)
        assert run.status == "succeeded", run.error
        how = "loaded through the pipeline"
    print(f"store: {users} users {how} in {time.perf_counter() - started:.1f} s ({database_url})")


def health_app(middleware: list[object]) -> falcon.App:
    app = falcon.App(middleware=middleware)
    app.add_route("/health", HealthResource())
    return app


def microseconds_per_request(app: falcon.App, requests: int) -> float:
    environ = falcon.testing.create_environ(path="/health")

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        assert status.startswith("200"), status

    started = time.perf_counter()
    for _ in range(requests):
        for _chunk in app(dict(environ), start_response):
            pass
    return (time.perf_counter() - started) / requests * 1e6


def middleware_overhead(rounds: int = 15, requests: int = 2000) -> tuple[float, float]:
    """Median microseconds per in-process request without, and with, the metrics middleware."""
    bare = health_app([])
    measured = health_app([MetricsMiddleware(ApiMetrics())])
    without, with_metrics = [], []
    for _ in range(rounds):  # alternating, so a busy moment on the machine hits both
        without.append(microseconds_per_request(bare, requests))
        with_metrics.append(microseconds_per_request(measured, requests))
    return statistics.median(without), statistics.median(with_metrics)


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


def get(
    connection: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read()


def median_latency_ms(
    port: int, path: str, headers: dict[str, str] | None = None, expect: int = 200
) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    timings = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        status, _ = get(connection, path, headers)
        timings.append(time.perf_counter() - started)
        assert status == expect, (path, status)
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


def direct_sql_ms(where: UserFilter) -> float:
    """The median time of the direct SQL statistics, the reference for /stats."""
    timings = []
    for _ in range(REFERENCE_RUNS):
        started = time.perf_counter()
        user_stats(where, utc_today())
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stream_all(port: int, pid: int) -> tuple[float, int, int, float, float]:
    """Seconds to receive all of GET /data, its users and bytes, server RSS before and peak.

    The body is read in pieces and never held whole, so the client stays small too.
    """
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
    connection.request("GET", "/data")
    response = connection.getresponse()
    marker = b'"user_id"'
    users = size = 0
    tail = b""
    while piece := response.read(1 << 16):
        size += len(piece)
        text = tail + piece
        users += text.count(marker)
        # Keep what could be the start of a marker cut by the piece's end.
        tail = text[-(len(marker) - 1) :]
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    assert response.status == 200, response.status
    return elapsed, users, size, before, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--fill", choices=("load", "sql"), default="load", help="how to fill the store"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of each throughput run"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument(
        "--loaded", action="store_true", help="the store at --database-url is filled already"
    )
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    without, with_metrics = middleware_overhead()
    print(
        f"metrics middleware: GET /health in-process {with_metrics:.1f} us with it, "
        f"{without:.1f} us without: {(with_metrics - without) / 1000:.3f} ms per request"
    )
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        if args.loaded and args.database_url:
            open_database(database_url)
        else:
            load_store(args.users, database_url, Path(scratch), args.fill)
        port = free_port()
        server = start_server(database_url, port)
        try:
            print(
                f"server: python -m api (waitress, {Settings().api_threads} threads), pid {server.pid}"
            )
            connection = http.client.HTTPConnection("127.0.0.1", port)
            started = time.perf_counter()
            status, _ = get(connection, "/stats")
            assert status == 200, status
            print(
                f"GET /stats, first after start (builds the aggregate): "
                f"{(time.perf_counter() - started) * 1000:.0f} ms"
            )
            for path in ENDPOINTS:
                median_latency_ms(port, path)  # warm up caches and connections
                latency = median_latency_ms(port, path)
                rate = requests_per_second(port, path, args.clients, args.seconds)
                line = f"GET {path}: median {latency:.2f} ms (1 client), {rate:.0f} req/s ({args.clients} clients)"
                if path in STATS_FILTERS:
                    line += (
                        f"; reference, the direct SQL: {direct_sql_ms(STATS_FILTERS[path]):.1f} ms"
                    )
                print(line)
            connection.request("GET", "/data?limit=100")
            response = connection.getresponse()
            response.read()
            etag = response.getheader("ETag")
            revalidation = median_latency_ms(
                port, "/data?limit=100", {"If-None-Match": etag}, expect=304
            )
            print(f"GET /data?limit=100 with its ETag: 304, median {revalidation:.2f} ms")
            for attempt in (1, 2):
                seconds, users, size, before, peak = stream_all(port, server.pid)
                print(
                    f"GET /data (all {users} users, {size / 1e6:.0f} MB, run {attempt}): {seconds:.2f} s, "
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
