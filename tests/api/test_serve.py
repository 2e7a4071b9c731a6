"""`zipflow api` serves the app with waitress: real HTTP, configured threads, a quiet log."""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import open_database
from shared.models import create_schema


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


@pytest.fixture(
    params=[["-m", "zipflow", "api"], ["-m", "api"]], ids=["zipflow api", "python -m api"]
)
def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen]]:
    """The API in its own process on a fresh SQLite store, with one waitress thread."""
    url = f"sqlite:///{tmp_path / 'zipflow.db'}"
    open_database(url)
    create_schema()
    port = free_port()
    env = {**os.environ, "ZIPFLOW_DATABASE_URL": url, "ZIPFLOW_API_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, *request.param, "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            get(port, "/health")
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"the API did not start: {process.communicate()[1]}")
            time.sleep(0.1)
    yield port, process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


def test_serves_over_http_with_waitress(server: tuple[int, subprocess.Popen]) -> None:
    port, _ = server
    assert get(port, "/ready")[:2] == (200, "application/json; charset=utf-8")
    status, _, body = get(port, "/stats?min_age=x")
    assert status == 400 and b'"parameter": "min_age"' in body


def test_queue_depth_warnings_do_not_flood_the_log(server: tuple[int, subprocess.Popen]) -> None:
    port, process = server
    # One thread and many simultaneous requests: waitress queues most of them.
    threads = [threading.Thread(target=get, args=(port, "/data")) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    process.terminate()
    log = process.communicate(timeout=10)[1]
    assert "Serving on http://127.0.0.1:" in log  # waitress does log; only the queue noise is gone
    assert "Task queue depth" not in log
    assert "ZIPFLOW_API_TOKEN is not set" in log
