"""A MinIO or RabbitMQ that is down or hung costs one fast, clear 503 on the requests that need
it, and nothing on the others: measured on the real server (`python -m api` on waitress)."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from minio import Minio
from outages import ApiProcess, api_process, closed_port, silent_listener
from sample_people import API_TOKEN, SOURCE_KEY, build_archive, load_archive

from shared.config import Settings
from shared.models import Run

IMAGE_OWNERS = ("1", "3", "10", "13", "abc")
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ZIP = {**AUTH, "Content-Type": "application/zip"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


@pytest.fixture
def loaded_settings(settings: Settings, minio: Minio, store_db, tmp_path: Path) -> Settings:
    """Settings whose store holds the sample people, images included, and a token."""
    load_archive(settings, minio, tmp_path, build_archive(), SOURCE_KEY)
    return replace(settings, api_token=API_TOKEN)


def needs_minio(api: ApiProcess, index: int) -> tuple[int, bytes, float]:
    """One of the three kinds of request that need MinIO: an image, a reprocess, an upload."""
    kind = index % 3
    if kind == 0:
        return api.request("GET", f"/data/{IMAGE_OWNERS[index % len(IMAGE_OWNERS)]}/image")
    if kind == 1:
        return api.request("POST", "/data", headers=AUTH)
    return api.request("POST", "/data", body=b"PK\x03\x04 not much of a zip", headers=ZIP)


def all_at_once(
    count: int, request: Callable[[int], tuple]
) -> tuple[list[tuple], list[threading.Thread]]:
    results: list[tuple] = [None] * count

    def one(index: int) -> None:
        results[index] = request(index)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return results, threads


def warm_up(api: ApiProcess, threads: int = 8) -> None:
    """/stats on every server thread at once, so each has opened its store connection."""
    _, requests = all_at_once(threads, lambda i: api.request("GET", "/stats"))
    for request in requests:
        request.join()


def stats_timings_while(threads: list[threading.Thread], api: ApiProcess) -> list[float]:
    """/stats asked again and again until `threads` are done: each answer's time."""
    timings = []
    while any(thread.is_alive() for thread in threads) or not timings:
        status, _, seconds = api.request("GET", "/stats")
        assert status == 200
        timings.append(seconds)
    for thread in threads:
        thread.join()
    return timings


def test_object_storage_down_is_a_fast_clear_503_and_reads_stay_fast(
    loaded_settings: Settings,
) -> None:
    port = closed_port()
    down = replace(loaded_settings, s3_endpoint=f"127.0.0.1:{port}")
    with api_process(down) as api:
        warm_up(api)
        results, threads = all_at_once(20, lambda i: needs_minio(api, i))
        stats = stats_timings_while(threads, api)
    unreachable = {
        "title": "Object storage unavailable",
        "description": f"object storage unreachable at 127.0.0.1:{port} (connection refused); "
        "images and uploads are unavailable, reads still work",
    }
    errors = [json.loads(body) for _, body, _ in results]
    assert [status for status, _, _ in results] == [503] * 20
    assert max(seconds for _, _, seconds in results) < 2.0
    # Those that found the bulkhead full were turned away at once, with a 503 of their own.
    assert unreachable in errors
    assert all(error == unreachable or error["title"] == "Busy" for error in errors)
    assert max(stats) < 0.1, stats
    # The client's detail is in the log, once for the outage, not once per request.
    assert api.log.count("object storage unreachable") == 1, api.log
    assert "Connection refused" in api.log
    failed = Run.select().where(Run.trigger == "reprocess", Run.status == "queued").count()
    assert failed == 0


def test_a_hung_object_storage_holds_only_its_share_of_the_threads(
    loaded_settings: Settings,
) -> None:
    with silent_listener() as port:
        hung = replace(loaded_settings, s3_endpoint=f"127.0.0.1:{port}")
        with api_process(hung) as api:
            warm_up(api)
            results, threads = all_at_once(
                20, lambda i: api.request("GET", f"/data/{IMAGE_OWNERS[i % 5]}/image")
            )
            stats = stats_timings_while(threads, api)
    statuses = [status for status, _, _ in results]
    assert statuses == [503] * 20
    titles = sorted({json.loads(body)["title"] for _, body, _ in results})
    # Half of the 8 threads waited for MinIO until the read timeout; the rest were turned
    # away at once instead of queueing behind them.
    assert titles == ["Busy", "Object storage unavailable"]
    waited = [seconds for _, body, seconds in results if b"Busy" not in body]
    assert 1 <= len(waited) <= 4
    assert all(seconds < 5 for seconds in waited)
    assert max(stats) < 0.1, stats


def test_broker_down_is_a_fast_clear_503_and_the_run_says_why(
    loaded_settings: Settings,
) -> None:
    port = closed_port()
    down = replace(
        loaded_settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F", log_format="json"
    )
    with api_process(down) as api:
        status, body, seconds = api.request("POST", "/data", headers=AUTH)
        assert api.request("GET", "/stats")[0] == 200
    # ZIPFLOW_LOG_FORMAT=json: every line an object; the outage is one of them.
    lines = [json.loads(line) for line in api.log.splitlines()]
    [outage] = [line for line in lines if line.get("outcome") == "down"]
    assert outage["level"] == "WARNING" and outage["logger"] == "zipflow.api"
    assert outage["message"].startswith(f"message broker unreachable at 127.0.0.1:{port}")
    assert outage["time"].endswith("+00:00")
    assert (status, seconds < 2.0) == (503, True)
    error = json.loads(body)
    assert error["title"] == "Message broker unavailable"
    assert error["description"] == (
        f"message broker unreachable at 127.0.0.1:{port} (connection refused); "
        "runs cannot be queued, reads still work"
    )
    run = Run.select().where(Run.trigger == "reprocess").get()
    assert run.status == "failed"
    assert run.error == error["description"]


def test_a_hung_broker_is_a_503_within_two_seconds(loaded_settings: Settings) -> None:
    with silent_listener() as port:
        hung = replace(loaded_settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F")
        with api_process(hung) as api:
            started = time.perf_counter()
            status, body, _ = api.request("POST", "/data", headers=AUTH)
            seconds = time.perf_counter() - started
    assert status == 503
    assert seconds < 2.5
    assert json.loads(body)["description"].startswith(
        f"message broker unreachable at 127.0.0.1:{port} (no answer in time)"
    )
