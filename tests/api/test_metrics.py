"""/metrics: requests counted by route template, timed, in flight, and the users in the store."""

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from falcon.testing import TestClient
from minio import Minio
from outages import api_process
from prometheus_client.parser import text_string_to_metric_families
from sample_people import PEOPLE, build_archive, load_archive

from shared.config import Settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


def scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(result.text)
        for sample in family.samples
    }


def requests(samples: dict, route: str, status: str, method: str = "GET") -> float:
    labels = frozenset({"route": route, "method": method, "status": status}.items())
    return samples.get(("zipflow_http_requests_total", labels), 0)


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    client.simulate_get("/data/1")
    client.simulate_get("/data/2")
    client.simulate_get("/data/nobody")
    client.simulate_get("/stats", query_string="min_age=abc")
    client.simulate_get("/no/such/path")
    client.simulate_request("BREW", "/stats")
    samples = scrape(client)
    assert requests(samples, "/data/{user_id}", "200") == 2
    assert requests(samples, "/data/{user_id}", "404") == 1
    assert requests(samples, "/stats", "400") == 1
    assert requests(samples, "unmatched", "404") == 1
    assert requests(samples, "/stats", "400", method="other") == 1
    text = client.simulate_get("/metrics").text
    # Never a raw path, a user id or a made-up method as a label value.
    assert "nobody" not in text and "/no/such" not in text and "BREW" not in text


def test_durations_are_a_histogram_by_route(client: TestClient) -> None:
    for _ in range(3):
        client.simulate_get("/stats")
    samples = scrape(client)
    route = frozenset({"route": "/stats"}.items())
    assert samples[("zipflow_http_request_duration_seconds_count", route)] == 3
    assert 0 < samples[("zipflow_http_request_duration_seconds_sum", route)] < 3
    infinite = frozenset({"route": "/stats", "le": "+Inf"}.items())
    assert samples[("zipflow_http_request_duration_seconds_bucket", infinite)] == 3


def test_a_streamed_listing_is_in_flight_until_its_body_is_sent(client: TestClient) -> None:
    chunks = client.simulate_get("/data", params={"format": "csv"}).text
    assert chunks.startswith("user_id,")
    samples = scrape(client)
    # The scrape itself is the one request in flight; the finished stream was counted out.
    assert samples[("zipflow_http_requests_in_flight", frozenset())] == 1
    route = frozenset({"route": "/data"}.items())
    assert samples[("zipflow_http_request_duration_seconds_count", route)] == 1


def test_users_in_the_store_follow_each_load(
    client: TestClient, settings: Settings, minio: Minio, tmp_path: Path
) -> None:
    samples = scrape(client)
    assert samples[("zipflow_users", frozenset())] == len(PEOPLE)
    assert samples[("zipflow_store_up", frozenset())] == 1
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE[:3]), "drops/fewer.zip")
    assert scrape(client)[("zipflow_users", frozenset())] == 3


def test_a_store_that_does_not_answer_is_store_up_0_not_a_failed_scrape(
    make_client, dead_store: None
) -> None:
    samples = scrape(make_client())
    assert samples[("zipflow_store_up", frozenset())] == 0
    assert ("zipflow_users", frozenset()) not in samples


def test_metrics_takes_no_query_parameters(client: TestClient) -> None:
    result = client.simulate_get("/metrics", query_string="name=x")
    assert result.status_code == 400
    assert result.json["parameter"] == "name"


def test_promtool_accepts_a_live_scrape_of_the_api(
    settings: Settings, loaded, promtool: str
) -> None:
    with api_process(replace(settings)) as api:
        for path in ("/stats", "/data/1", "/data/nobody", "/runs"):
            api.request("GET", path)
        status, body, _ = api.request("GET", "/metrics")
    assert status == 200
    assert b"zipflow_http_requests_total{" in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == b""
