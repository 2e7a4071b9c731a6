"""The worker's metrics move by the right amounts, against the real broker and S3 endpoint,
and its endpoint serves what Prometheus's own promtool accepts."""

import http.client
import random
import socket
import subprocess
import time
from dataclasses import replace

import pytest
from worker_support import minio_event, publish_event, wait_for, write_zip

from shared.config import Settings
from shared.demo import demo_png
from shared.models import Run
from tests.worker.test_worker_consumer import BIRTH, finished_runs, upload
from worker.cli import check_consumed
from worker.metrics import MetricsUnavailable, WorkerMetrics, check_serving, serve


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def events(metrics: WorkerMetrics) -> dict[str, float]:
    outcomes = ("loaded", "skipped", "failed", "dead_lettered", "ignored")
    return {o: sample(metrics, "zipflow_events_total", outcome=o) for o in outcomes}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_counters_for_a_load_a_duplicate_a_bad_archive_and_a_dead_letter(
    tmp_path, settings, minio, broker, start_worker
):
    worker = start_worker(settings)
    metrics = worker.consumer.handler.metrics
    archive = write_zip(
        tmp_path / "a.zip",
        {"1": ("Ann", "Lee", BIRTH), "2": ("Bo", "Ek", BIRTH)},
        images={"1": demo_png(random.Random(1))},
    )
    etag = upload(minio, settings, archive, "a.zip")
    event = minio_event(settings.source_bucket, "a.zip", etag)

    publish_event(broker, settings, event)
    finished_runs(1)
    wait_for(lambda: events(metrics)["loaded"] == 1, what="the load counted")
    assert sample(metrics, "zipflow_runs_total", status="succeeded", trigger="event") == 1
    assert sample(metrics, "zipflow_images_uploaded_total") == 1
    assert sample(metrics, "zipflow_run_duration_seconds_count") == 1
    assert sample(metrics, "zipflow_last_success_timestamp_seconds") == pytest.approx(
        time.time(), abs=30
    )

    publish_event(broker, settings, event)  # the same upload again
    wait_for(lambda: events(metrics)["skipped"] == 1, what="the duplicate counted")

    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip at all")
    bad = upload(minio, settings, tmp_path / "bad.zip", "bad.zip")
    publish_event(broker, settings, minio_event(settings.source_bucket, "bad.zip", bad))
    wait_for(lambda: events(metrics)["failed"] == 1, what="the bad archive counted")
    assert sample(metrics, "zipflow_runs_total", status="failed", trigger="event") == 1

    publish_event(broker, settings, b'{"Records": "oops"}')
    wait_for(lambda: events(metrics)["dead_lettered"] == 1, what="the dead letter counted")

    publish_event(broker, settings, minio_event(settings.source_bucket, "notes.txt"))
    wait_for(lambda: events(metrics)["ignored"] == 1, what="the non-zip counted")

    assert events(metrics) == {
        "loaded": 1,
        "skipped": 1,
        "failed": 1,
        "dead_lettered": 1,
        "ignored": 1,
    }
    assert sample(metrics, "zipflow_runs_total", status="succeeded", trigger="event") == 1
    assert sample(metrics, "zipflow_run_duration_seconds_count") == 2
    assert sample(metrics, "zipflow_worker_active") == 1
    worker.stop()
    assert sample(metrics, "zipflow_worker_active") == 0


def test_rejected_files_are_counted(tmp_path, settings, minio, broker, start_worker):
    worker = start_worker(settings)
    archive = write_zip(
        tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH), "2": ("", "Nameless", BIRTH)}
    )
    etag = upload(minio, settings, archive, "a.zip")
    publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))
    [run] = finished_runs(1)
    assert run.rejected == 1
    metrics = worker.consumer.handler.metrics
    wait_for(lambda: sample(metrics, "zipflow_rejected_files_total") == 1, what="the count")


def test_source_lag_rises_for_a_lost_event_and_returns_to_0_once_loaded(
    tmp_path, settings, minio, broker, start_worker
):
    # The upload's event is withheld: only the sweep can find the zip.
    upload(minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip")
    time.sleep(1.2)
    worker = start_worker(replace(settings, reconcile_seconds=2))
    metrics = worker.consumer.handler.metrics
    assert sample(metrics, "zipflow_reconcile_interval_seconds") == 2
    lag = wait_for(
        lambda: sample(metrics, "zipflow_source_lag_seconds"), what="the sweep's lag figure"
    )
    assert 1.0 <= lag < 30
    [run] = finished_runs(1)
    assert (run.status, run.trigger) == ("succeeded", "reconcile")
    # The next sweep finds the store reflecting the newest zip.
    wait_for(
        lambda: sample(metrics, "zipflow_source_lag_seconds") == 0,
        timeout=10,
        what="the lag back to 0",
    )
    assert sample(metrics, "zipflow_runs_total", status="succeeded", trigger="reconcile") == 1
    assert Run.select().count() == 1


def test_only_the_active_replica_says_it_is_active(tmp_path, settings, broker, start_worker):
    first, second = start_worker(settings), start_worker(settings)
    publish_event(broker, settings, minio_event(settings.source_bucket, "notes.txt"))
    replicas = [w.consumer.handler.metrics for w in (first, second)]
    wait_for(lambda: sum(events(m)["ignored"] for m in replicas) == 1, what="the event")
    assert sorted(sample(m, "zipflow_worker_active") for m in replicas) == [0, 1]


def test_the_endpoint_serves_what_promtool_accepts(settings: Settings, promtool: str) -> None:
    metrics = WorkerMetrics(reconcile_seconds=300)
    metrics.event("loaded")
    served = replace(settings, worker_metrics_port=free_port())
    serve(metrics, served)
    check_serving(served)
    connection = http.client.HTTPConnection("127.0.0.1", served.worker_metrics_port, timeout=5)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200
    assert b'zipflow_events_total{outcome="loaded"} 1.0' in body
    for name in (b"zipflow_source_lag_seconds", b"zipflow_worker_active", b"zipflow_runs_total"):
        assert name in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == b""


def test_a_busy_port_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = replace(settings, worker_metrics_port=taken.getsockname()[1])
        with pytest.raises(MetricsUnavailable, match="ZIPFLOW_WORKER_METRICS_PORT"):
            serve(WorkerMetrics(), busy)


def test_check_fails_when_the_metrics_endpoint_is_configured_but_not_serving(
    settings, broker, start_worker, capsys
):
    start_worker(settings)
    silent = replace(settings, worker_metrics_port=free_port())
    assert check_consumed(silent) == 1
    assert "metrics endpoint 127.0.0.1:" in capsys.readouterr().err
    serve(WorkerMetrics(), silent)
    assert check_consumed(silent) == 0
    assert check_consumed(replace(settings, worker_metrics_port=0)) == 0
