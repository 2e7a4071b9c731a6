"""Dependencies that are down in the two ways that matter: nothing listens, or it never answers."""

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from shared.config import Settings


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers: a hung server."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(128)
        yield server.getsockname()[1]


def api_environment(settings: Settings) -> dict[str, str]:
    """The ZIPFLOW_* variables that make `python -m api` use these settings."""
    return {
        **os.environ,
        "ZIPFLOW_DATABASE_URL": settings.database_url,
        "ZIPFLOW_S3_ENDPOINT": settings.s3_endpoint,
        "ZIPFLOW_S3_ACCESS_KEY": settings.s3_access_key,
        "ZIPFLOW_S3_SECRET_KEY": settings.s3_secret_key,
        "ZIPFLOW_SOURCE_BUCKET": settings.source_bucket,
        "ZIPFLOW_PROCESSED_BUCKET": settings.processed_bucket,
        "ZIPFLOW_AMQP_URL": settings.amqp_url,
        "ZIPFLOW_QUEUE": settings.queue,
        "ZIPFLOW_API_TOKEN": settings.api_token,
        "ZIPFLOW_API_THREADS": str(settings.api_threads),
        "ZIPFLOW_LOG_FORMAT": settings.log_format,
    }


@contextlib.contextmanager
def api_process(settings: Settings) -> Iterator["ApiProcess"]:
    """`python -m api` on its own port with `settings`, stopped afterwards."""
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(port)],
        env=api_environment(settings),
        stderr=subprocess.PIPE,
        text=True,
    )
    api = ApiProcess(port, process)
    deadline = time.monotonic() + 20
    while True:
        try:
            api.request("GET", "/health")
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the API did not start: {process.communicate()[1]}") from None
            time.sleep(0.1)
    try:
        yield api
    finally:
        if process.poll() is None:
            process.terminate()
        api.log = process.communicate(timeout=10)[1]


class ApiProcess:
    """A running API and what it logged (`log` is filled in once it has stopped)."""

    def __init__(self, port: int, process: subprocess.Popen) -> None:
        self.port = port
        self.process = process
        self.log = ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes, float]:
        """Status, body and seconds taken of one request on a new connection."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), time.perf_counter() - started
        finally:
            connection.close()
