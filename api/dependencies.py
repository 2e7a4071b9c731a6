"""The API's outside services (object storage, the broker) and how their outages stay contained.

Reads need only the store. Image downloads and `POST /data` also need MinIO, and a reprocess
request the broker; when one of those is down or slow, those requests must fail fast with a
503 that says what is missing and what still works, while every other request goes on as if
nothing happened. Three things make it so:

- the clients give up quickly (`shared.storage.quick_http_client`,
  `shared.messages.broker_parameters`);
- every call goes through a `Dependency`, which turns the client's exception into
  `DependencyUnavailable` with a sentence for people, and logs the client's own detail once
  per outage rather than once per request;
- a `Bulkhead` lets requests that wait on these services hold only some of the server's
  threads, so even a MinIO that accepts connections and never answers leaves the rest free.
"""

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, ParamSpec, TypeVar

import urllib3.exceptions
from minio.error import MinioException, S3Error, ServerError
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from shared.messages import PublishError
from shared.storage import ProcessedStore, SourceBucket, SourceObject

log = logging.getLogger("zipflow.api")

P = ParamSpec("P")
T = TypeVar("T")

# What the MinIO SDK raises when MinIO is down, slow or refuses a request.
OBJECT_STORAGE_FAILURES: tuple[type[Exception], ...] = (
    MinioException,
    urllib3.exceptions.HTTPError,
    OSError,
)


class DependencyUnavailable(Exception):
    """An outside service failed a request; `title` and `description` are for the client."""

    def __init__(self, title: str, description: str) -> None:
        super().__init__(description)
        self.title = title
        self.description = description


class Bulkhead:
    """At most `slots` requests at a time may wait on outside services; the next is a 503 at once.

    Waiting for a slot would hold a server thread just the same, so a full bulkhead answers
    straight away and asks the client to come back.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._free = threading.BoundedSemaphore(self.slots)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise DependencyUnavailable(
                "Busy",
                f"{self.slots} requests are already waiting on object storage or the broker; "
                "images and uploads are unavailable for a moment, reads still work. "
                "Try again shortly.",
            )
        try:
            yield
        finally:
            self._free.release()


class Dependency:
    """One outside service: its name, where it is, what stops working without it, and whether
    it is down right now (so an outage is logged when it starts and when it ends, not per call)."""

    def __init__(
        self, name: str, address: str, without: str, failures: tuple[type[Exception], ...]
    ) -> None:
        self.name = name
        self.address = address
        self.without = without
        self.failures = failures
        self._down = False
        self._lock = threading.Lock()

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)`, its failures raised as `DependencyUnavailable`."""
        try:
            result = function(*args, **kwargs)
        except self.failures as error:
            reason = describe_failure(self.name, self.address, error)
            self._went_down(reason, error)
            raise DependencyUnavailable(
                f"{self.name.capitalize()} unavailable", f"{reason}; {self.without}"
            ) from error
        if self._down:
            self._came_back()
        return result

    def _went_down(self, reason: str, error: Exception) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning(
                "%s (%r); said once until it answers again",
                reason,
                error,
                extra={"outcome": "down"},
            )

    def _came_back(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            log.info("%s answers again at %s", self.name, self.address, extra={"outcome": "up"})


def describe_failure(name: str, address: str, error: BaseException) -> str:
    """A sentence for people about why `name` at `address` failed, never a client's repr."""
    cause = network_cause(error)
    if cause is not None:
        return f"{name} unreachable at {address} ({cause})"
    if isinstance(error, S3Error):
        return f"{name} at {address} refused the request ({error.code})"
    if isinstance(error, ServerError):
        return f"{name} at {address} answered HTTP {error.status_code}"
    if isinstance(error, PublishError):
        return f"{name}: {error}"  # zipflow's own message, written for people
    return f"{name} at {address} failed ({type(error).__name__})"


def network_cause(error: BaseException) -> str | None:
    """What went wrong on the network, if anything, found among the wrapped exceptions."""
    chain = _wrapped(error)

    def found(*kinds: type[BaseException]) -> bool:
        return any(isinstance(e, kinds) for e in chain)

    if found(ConnectionRefusedError):
        return "connection refused"
    if found(socket.gaierror, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve"
    if any("ACCESS_REFUSED" in str(e) for e in chain):
        return "the login was refused: check the credentials"
    # After the others: urllib3's NewConnectionError is also a ConnectTimeoutError.
    if found(TimeoutError, urllib3.exceptions.TimeoutError, AMQPConnectorStackTimeout):
        return "no answer in time"
    if found(ConnectionError, urllib3.exceptions.ProtocolError):
        return "the connection was dropped"
    return None


def _wrapped(error: BaseException) -> list[BaseException]:
    """`error` and every exception inside it: urllib3 keeps the socket error as `reason` and
    `__cause__`, pika in its error's arguments, as `exception`."""
    chain: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseException) and all(current is not e for e in chain):
            chain.append(current)
            pending += [current.__cause__, current.__context__]
            pending += [getattr(current, "reason", None), getattr(current, "exception", None)]
            pending += list(current.args)
    return chain


class GuardedSources:
    """The source bucket as the API uses it, every call through the object-storage dependency."""

    def __init__(self, sources: SourceBucket, dependency: Dependency) -> None:
        self.sources = sources
        self.bucket = sources.bucket
        self.dependency = dependency

    def stat(self, key: str) -> SourceObject | None:
        return self.dependency.call(self.sources.stat, key)

    def newest_zip(self) -> SourceObject | None:
        return self.dependency.call(self.sources.newest_zip)

    def upload(self, stream: BinaryIO, key: str, length: int) -> SourceObject:
        return self.dependency.call(self.sources.upload, stream, key, length)


class GuardedImages:
    """The processed bucket, read through the object-storage dependency."""

    def __init__(self, images: ProcessedStore, dependency: Dependency) -> None:
        self.images = images
        self.dependency = dependency

    def get(self, key: str) -> bytes | None:
        return self.dependency.call(self.images.get, key)
