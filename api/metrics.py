"""The API's Prometheus metrics: every request counted and timed by a middleware, served at /metrics.

Each app has its own registry, so tests build as many apps as they like. Labels hold only
bounded values: the route template (`/data/{user_id}`, never the path asked for), the
method, the status code.
"""

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import falcon
import peewee
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from api import params
from api.resources import close_broken_connection
from shared.db import data_version
from shared.queries import user_count

# Requests take a millisecond or two; a full listing of a million users, seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class ApiMetrics:
    """The metrics of one app and the registry that serves them."""

    def __init__(self) -> None:
        # No `*_created` series beside every counter and histogram: half the scrape, unused.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zipflow_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "zipflow_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response, by route template.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "zipflow_http_requests_in_flight",
            "Requests being answered right now.",
            registry=self.registry,
        )
        self.registry.register(StoreCollector())
        ProcessCollector(registry=self.registry)


class MetricsMiddleware:
    """Counts and times every request; a streamed body is timed until it is sent whole."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        self.metrics.in_flight.inc()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        route = req.uri_template or UNMATCHED
        method = req.method if req.method in METHODS else "other"
        self.metrics.requests.labels(route, method, str(resp.status_code)).inc()
        if resp.stream is not None:
            resp.stream = TimedStream(resp.stream, lambda: self._finish(req, route))
        else:
            self._finish(req, route)

    def _finish(self, req: falcon.Request, route: str) -> None:
        self.metrics.duration.labels(route).observe(time.perf_counter() - req.context.started)
        self.metrics.in_flight.dec()


class TimedStream:
    """A response body that reports when the server is done with it (WSGI calls `close`)."""

    def __init__(self, stream: Iterable[bytes], done: Any) -> None:
        self.stream = stream
        self.done = done
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self.stream, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


class StoreCollector(Collector):
    """`zipflow_users` and `zipflow_store_up`, read when Prometheus scrapes.

    Counting a million users costs the store tens of milliseconds, and they only change
    with a load: the count is taken again only when the data version (one row) changed
    since the last scrape.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counted: tuple[str, int] | None = None

    def collect(self) -> Iterator[Metric]:
        try:
            users = self._users()
        except peewee.PeeweeException:
            close_broken_connection()
            users = None
        yield GaugeMetricFamily(
            "zipflow_store_up",
            "1 when the store answered the last scrape's query, 0 when it did not.",
            value=0 if users is None else 1,
        )
        if users is not None:
            yield GaugeMetricFamily("zipflow_users", "Users in the store.", value=users)

    def _users(self) -> int:
        version = data_version()
        with self._lock:
            if self._counted is not None and self._counted[0] == version:
                return self._counted[1]
        count = user_count()
        with self._lock:
            self._counted = (version, count)
        return count


class MetricsResource:
    """/metrics: the Prometheus exposition, in the format the scraper asks for."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.registry = metrics.registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, ())
        encoder, content_type = choose_encoder(req.get_header("Accept") or "")
        resp.content_type = content_type
        resp.data = encoder(self.registry)
