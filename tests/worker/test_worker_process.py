"""The worker as the deployment runs it: `python -m worker`, a separate process, killed or stopped.

Kills and signals need a real process. The store is a SQLite file both the worker and the
test open. The worker reaches S3 through a proxy that delays every request, so a load of
a few hundred images surely lasts long enough for the test to act while it is in progress.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_support import SlowProxy, minio_event, publish_event, wait_for

from shared.config import Settings
from shared.demo import write_demo_archive
from shared.messages import publish_reprocess
from shared.models import Run, User, queue_run

USERS = 300
REQUEST_DELAY = 0.03


def worker_env(settings: Settings, s3_endpoint: str) -> dict[str, str]:
    """The ZIPFLOW_* environment that gives `python -m worker` the test's settings."""
    values = {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "S3_ENDPOINT": s3_endpoint,
        "S3_ACCESS_KEY": settings.s3_access_key,
        "S3_SECRET_KEY": settings.s3_secret_key,
        "SOURCE_BUCKET": settings.source_bucket,
        "PROCESSED_BUCKET": settings.processed_bucket,
        "AMQP_URL": settings.amqp_url,
        "EXCHANGE": settings.exchange,
        "QUEUE": settings.queue,
        "DEAD_LETTER": settings.dead_letter,
        "MAX_DELIVERIES": str(settings.max_deliveries),
        "RECONCILE_SECONDS": "0",
        # 0 (the worker tests' setting): no two workers compete for the default port.
        "WORKER_METRICS_PORT": str(settings.worker_metrics_port),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIPFLOW_")}
    env.update({f"ZIPFLOW_{name}": value for name, value in values.items()})
    return env


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path, db: object, broker: object) -> Iterator[callable]:
    """Start `python -m worker` processes; any still running after the test are killed."""
    processes: list[subprocess.Popen] = []
    proxy = SlowProxy(settings.s3_endpoint, REQUEST_DELAY)

    def start(**overrides: str) -> subprocess.Popen:
        """`overrides`: more ZIPFLOW_* values, by name without the prefix."""
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        env = worker_env(settings, proxy.endpoint)
        env.update({f"ZIPFLOW_{name}": value for name, value in overrides.items()})
        process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        wait_for(
            lambda: b"consuming" in (tmp_path / f"worker-{len(processes) - 1}.log").read_bytes(),
            what="the worker to consume",
        )
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    proxy.close()


def publish_archive(tmp_path: Path, settings: Settings, minio, broker, key: str = "big.zip") -> str:
    path = tmp_path / key
    write_demo_archive(path, USERS)
    etag = minio.fput_object(settings.source_bucket, key, str(path)).etag.strip('"')
    publish_event(
        broker, settings, minio_event(settings.source_bucket, key, etag, path.stat().st_size)
    )
    return etag


def running_run() -> Run:
    return wait_for(lambda: Run.get_or_none(Run.status == "running"), what="a run in progress")


def depths(broker, settings: Settings) -> tuple[int, int]:
    work = broker.queue_declare(settings.queue, passive=True).method.message_count
    dead = broker.queue_declare(settings.dead_letter, passive=True).method.message_count
    return work, dead


def test_worker_killed_mid_run_gets_the_message_again_and_loads_it_once(
    tmp_path, settings, minio, broker, spawn
):
    first = spawn()
    etag = publish_archive(tmp_path, settings, minio, broker)
    interrupted = running_run()
    first.kill()
    first.wait()
    assert User.select().count() == 0, "the killed run's transaction must not be visible"

    second = spawn()
    done = wait_for(
        lambda: Run.get_or_none(Run.status == "succeeded"), timeout=60, what="the reload"
    )
    assert done.etag == etag
    assert User.select().count() == USERS
    abandoned = Run.get_by_id(interrupted.id)
    assert abandoned.status == "abandoned"
    assert abandoned.note.startswith("abandoned: the process loading it stopped")
    assert abandoned.finished_at is not None
    assert Run.select().count() == 2
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert depths(broker, settings) == (0, 0)


def statuses() -> list[tuple[str, str]]:
    return [(run.trigger, run.status) for run in Run.select().order_by(Run.id)]


def test_worker_killed_during_a_sweep_leaves_no_run_running(tmp_path, settings, minio, spawn):
    path = tmp_path / "big.zip"
    write_demo_archive(path, USERS)
    minio.fput_object(settings.source_bucket, "big.zip", str(path))  # its event was lost
    first = spawn(RECONCILE_SECONDS="300")
    interrupted = running_run()
    assert interrupted.trigger == "reconcile"
    first.kill()
    first.wait()

    second = spawn(RECONCILE_SECONDS="300")
    wait_for(lambda: Run.get_or_none(Run.status == "succeeded"), timeout=60, what="the reload")
    # The redelivered sweep and the new worker's own: one loads, the other finds it loaded.
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert statuses() == [("reconcile", "abandoned"), ("reconcile", "succeeded")]
    assert Run.get_by_id(interrupted.id).note.startswith("abandoned: ")
    assert User.select().count() == USERS


def test_worker_killed_during_a_reprocess_leaves_no_run_running(
    tmp_path, settings, minio, broker, spawn
):
    path = tmp_path / "big.zip"
    write_demo_archive(path, USERS)
    minio.fput_object(settings.source_bucket, "big.zip", str(path))
    first = spawn()
    queued = queue_run(f"{settings.source_bucket}/big.zip", "reprocess")
    publish_reprocess(settings, queued.id, "big.zip")
    assert running_run().id == queued.id
    first.kill()
    first.wait()

    second = spawn()
    done = wait_for(
        lambda: Run.get_or_none(Run.status == "succeeded"), timeout=60, what="the reload"
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    abandoned = Run.get_by_id(queued.id)
    assert abandoned.status == "abandoned"
    assert abandoned.note.endswith(f"the redelivered command loads it as run {done.id}")
    assert statuses() == [("reprocess", "abandoned"), ("reprocess", "succeeded")]
    assert User.select().count() == USERS
    assert depths(broker, settings) == (0, 0)


def test_sigterm_mid_run_finishes_the_load_acknowledges_and_exits(
    tmp_path, settings, minio, broker, spawn
):
    worker = spawn()
    publish_archive(tmp_path, settings, minio, broker)
    run = running_run()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert Run.get_by_id(run.id).status == "succeeded"
    assert User.select().count() == USERS
    assert depths(broker, settings) == (0, 0)


def test_second_sigterm_abandons_the_message_for_redelivery(
    tmp_path, settings, minio, broker, spawn
):
    worker = spawn()
    publish_archive(tmp_path, settings, minio, broker)
    running_run()
    worker.send_signal(signal.SIGTERM)
    # Two signals sent at once would merge into one; send the second once the first is seen.
    log = tmp_path / "worker-0.log"
    wait_for(lambda: b"finishing the message in hand" in log.read_bytes(), what="the first SIGTERM")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert User.select().count() == 0
    assert depths(broker, settings) == (1, 0)


def test_python_m_worker_takes_the_options_of_zipflow_worker(settings, s3_endpoint, broker):
    """`python -m worker --check` is the health check, not a worker that never exits."""
    env = worker_env(settings, s3_endpoint)

    def python_m_worker(option: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "worker", option],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    check = python_m_worker("--check")
    assert check.returncode == 1
    assert "does not exist" in check.stderr
    typo = python_m_worker("--chek")
    assert typo.returncode == 2
    assert "unrecognized arguments: --chek" in typo.stderr


def test_a_running_worker_serves_metrics_promtool_accepts_and_its_check_sees_them(
    settings, s3_endpoint, spawn, promtool: str
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spawn(WORKER_METRICS_PORT=str(port))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200
    assert b'zipflow_events_total{outcome="loaded"} 0.0' in body
    assert b"zipflow_worker_active" in body and b"process_resident_memory_bytes" in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == b""
    env = {**worker_env(settings, s3_endpoint), "ZIPFLOW_WORKER_METRICS_PORT": str(port)}
    check = subprocess.run(
        [sys.executable, "-m", "worker", "--check"], env=env, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
