"""The worker's Prometheus metrics and the HTTP endpoint that serves them.

The consumer counts each message's outcome, the handler each load and what the reconcile
sweep finds; `serve` publishes them on ZIPFLOW_WORKER_METRICS_PORT. Labels hold only
bounded values: outcomes, run statuses, triggers.
"""

import http.client
import threading
import time
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.process_collector import ProcessCollector

from shared.config import Settings
from shared.models import RUN_STATUSES, Run

OUTCOMES = ("loaded", "skipped", "failed", "dead_lettered", "ignored")
TRIGGERS = ("event", "reprocess", "reconcile")
# From a 100-user zip (tens of milliseconds) to ten million users (most of an hour).
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class MetricsUnavailable(RuntimeError):
    """The metrics endpoint cannot be served, or does not answer."""


class WorkerMetrics:
    """Everything the worker counts, in a registry of its own (so tests can make many)."""

    def __init__(self, reconcile_seconds: int = 0) -> None:
        # No `*_created` series beside every counter and histogram: half the scrape, unused.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.events = Counter(
            "zipflow_events",
            "Messages handled (MinIO events and reprocess commands), by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.runs = Counter(
            "zipflow_runs",
            "Loads that ran the pipeline, by the run's status and what started it.",
            ["status", "trigger"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "zipflow_run_duration_seconds",
            "How long each load took, download included.",
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "zipflow_last_success_timestamp_seconds",
            "When the newest successful load finished (Unix time; 0: never).",
            registry=self.registry,
        )
        self.rejected_files = Counter(
            "zipflow_rejected_files",
            "User files the loads rejected.",
            registry=self.registry,
        )
        self.images_uploaded = Counter(
            "zipflow_images_uploaded",
            "Images the loads wrote to the processed bucket.",
            registry=self.registry,
        )
        self.active = Gauge(
            "zipflow_worker_active",
            "1 once this replica has been handed messages as the queue's single active "
            "consumer, 0 on a standby or while disconnected.",
            registry=self.registry,
        )
        self.source_lag = Gauge(
            "zipflow_source_lag_seconds",
            "At the last reconcile sweep: how long the newest zip in the source bucket had "
            "waited without being loaded (0 when the store reflected it).",
            registry=self.registry,
        )
        self.reconcile_interval = Gauge(
            "zipflow_reconcile_interval_seconds",
            "Seconds between reconcile sweeps (ZIPFLOW_RECONCILE_SECONDS; 0: off).",
            registry=self.registry,
        )
        self.reconcile_interval.set(reconcile_seconds)
        for outcome in OUTCOMES:
            self.events.labels(outcome)
        for status in ("succeeded", "failed"):
            for trigger in TRIGGERS:
                self.runs.labels(status, trigger)
        ProcessCollector(registry=self.registry)

    def event(self, outcome: str) -> None:
        self.events.labels(outcome).inc()

    def run(self, run: Run, seconds: float) -> None:
        """Count a load that ran the pipeline (succeeded, or failed on a bad archive)."""
        status = run.status if run.status in RUN_STATUSES else "failed"
        self.runs.labels(status, run.trigger if run.trigger in TRIGGERS else "other").inc()
        self.run_duration.observe(seconds)
        self.rejected_files.inc(run.rejected)
        self.images_uploaded.inc(run.images_uploaded)
        if run.status == "succeeded":
            self.last_success.set(time.time())

    def loaded_before(self, run: Run | None) -> None:
        """At start: the newest success already in the store, so a restart is not "never"."""
        if run is not None and run.finished_at is not None:
            self.last_success.set(run.finished_at.replace(tzinfo=UTC).timestamp())

    def lag(self, waiting_since: datetime | None) -> None:
        """What a sweep found: the unloaded newest zip's modification time, or None."""
        if waiting_since is None:
            self.source_lag.set(0)
            return
        since = waiting_since.replace(tzinfo=UTC).timestamp()
        self.source_lag.set(max(0.0, time.time() - since))


def serve(metrics: WorkerMetrics, settings: Settings) -> threading.Thread | None:
    """Serve /metrics on the configured address in a daemon thread; None when turned off."""
    if not settings.worker_metrics_port:
        return None
    try:
        _, thread = start_http_server(
            settings.worker_metrics_port, settings.worker_metrics_host, registry=metrics.registry
        )
    except OSError as error:
        raise MetricsUnavailable(
            f"cannot serve metrics on {settings.worker_metrics_host}:"
            f"{settings.worker_metrics_port} ({error.strerror or error}); set "
            "ZIPFLOW_WORKER_METRICS_PORT to a free port, or 0 to turn the endpoint off"
        ) from None
    return thread


def check_serving(settings: Settings) -> None:
    """Raise `MetricsUnavailable` unless the configured endpoint answers a scrape."""
    host = settings.worker_metrics_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: ask locally
        host = "127.0.0.1"
    where = f"{host}:{settings.worker_metrics_port}"
    connection = http.client.HTTPConnection(host, settings.worker_metrics_port, timeout=3)
    try:
        connection.request("GET", "/metrics")
        status = connection.getresponse().status
    except OSError as error:
        raise MetricsUnavailable(f"the metrics endpoint {where} does not answer: {error}") from None
    finally:
        connection.close()
    if status != 200:
        raise MetricsUnavailable(f"the metrics endpoint {where} answered HTTP {status}")
