"""/ready: which of the API's dependencies answer, each asked in parallel and given one second.

The store is what the API cannot work without, so it alone decides the status code: 200
while it answers (reads work; images and uploads may not, and the body says so), 503 when it
does not. A load balancer takes the API out of rotation only when it really cannot serve.
"""

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import falcon
import peewee
import pika
import pika.exceptions
from minio import Minio
from minio.error import S3Error

from api import params
from api.dependencies import network_cause
from api.resources import close_broken_connection
from shared.config import Settings
from shared.db import database
from shared.messages import broker_parameters
from shared.models import Run

CHECK_SECONDS = 1.0


class NotReady(Exception):
    """A dependency answered, but not as the API needs: `status` and `detail` say how."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Check:
    """One dependency to ask: `probe` returns when it is fine and raises when it is not;
    None for a dependency this configuration does not use (no MinIO: no broker either)."""

    name: str
    address: str
    probe: Callable[[], None] | None


def check_store() -> None:
    try:
        database.execute_sql("SELECT 1")
        Run.select(Run.id).limit(1).execute()
    except peewee.PeeweeException:
        close_broken_connection()
        raise


def broker_probe(settings: Settings) -> Callable[[], None]:
    """Connect, and make sure the queue POST /data publishes to exists."""

    def probe() -> None:
        connection = pika.BlockingConnection(broker_parameters(settings.amqp_url, "zipflow-ready"))
        try:
            connection.channel().queue_declare(settings.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            raise NotReady(
                "missing", f"queue {settings.queue} does not exist: start the worker"
            ) from None
        finally:
            if connection.is_open:
                connection.close()

    return probe


def object_storage_probe(client: Minio, bucket: str) -> Callable[[], None]:
    """Ask for the source bucket, which uploads and reprocess requests need."""

    def probe() -> None:
        if not client.bucket_exists(bucket):
            raise NotReady("missing", f"bucket {bucket} does not exist: run `zipflow setup`")

    return probe


def store_address(url: str) -> str:
    """Where the store is, for people: host and port, or the file; never the password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///") or "memory"
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"


def broker_address(url: str) -> str:
    parameters = pika.URLParameters(url)
    return f"{parameters.host}:{parameters.port}"


def directory_probe(root: Path) -> Callable[[], None]:
    """Without MinIO, images are files under `root`: it must be a directory."""

    def probe() -> None:
        if root.exists() and not root.is_dir():
            raise NotReady("failed", f"{root} is not a directory (ZIPFLOW_DATA_DIR)")

    return probe


class ReadyResource:
    """/ready: every dependency's state and how long it took to tell."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        # One thread per check: a dependency that hangs holds up only its own next check.
        self.pools = {
            check.name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ready-{check.name}")
            for check in checks
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, ())
        started = time.perf_counter()
        used = [c for c in self.checks if c.probe is not None]
        futures = {c.name: self.pools[c.name].submit(_timed, c.probe) for c in used}
        deadline = started + CHECK_SECONDS
        results = {
            c.name: _result(c, futures[c.name], deadline - time.perf_counter())
            if c.probe is not None
            else {"status": "unused", "detail": "not used without MinIO", "ms": 0}
            for c in self.checks
        }
        store_ok = results["store"]["status"] == "ok"
        everything_ok = all(result["status"] in ("ok", "unused") for result in results.values())
        if not store_ok:
            resp.status = falcon.HTTP_503
        status = "ready" if everything_ok else "degraded" if store_ok else "unavailable"
        resp.media = {"status": status, "checks": results}


def _timed(probe: Callable[[], None]) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        probe()
    except Exception as error:
        return time.perf_counter() - started, error
    return time.perf_counter() - started, None


def _result(
    check: Check, future: Future[tuple[float, BaseException | None]], wait: float
) -> dict[str, Any]:
    try:
        seconds, error = future.result(timeout=max(0.0, wait))
    except FutureTimeout:
        future.cancel()  # still queued behind a check that hangs: do not run it later
        return {
            "status": "timeout",
            "detail": f"no answer within {CHECK_SECONDS:g} s from {check.address}",
            "ms": round(CHECK_SECONDS * 1000),
        }
    ms = round(seconds * 1000)
    if error is None:
        return {"status": "ok", "ms": ms}
    if isinstance(error, NotReady):
        return {"status": error.status, "detail": error.detail, "ms": ms}
    cause = network_cause(error)
    if cause is not None:
        return {"status": "unreachable", "detail": f"{cause} at {check.address}", "ms": ms}
    return {"status": "failed", "detail": _failure(error, check.address), "ms": ms}


def _failure(error: BaseException, address: str) -> str:
    """A dependency that answered with an error: its own words, on one line, never a repr."""
    if isinstance(error, peewee.PeeweeException):
        return "the store does not answer: " + " ".join(str(error).split())
    if isinstance(error, S3Error):
        return f"{address} refused the request ({error.code})"
    return f"{address} failed ({type(error).__name__})"
