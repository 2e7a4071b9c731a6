"""Every bad parameter is a 400 with a JSON body naming it, on /data and /stats alike, and so
is a parameter an endpoint does not take, on every endpoint."""

from pathlib import Path

import pytest
from falcon.testing import TestClient

FILTER_CASES = [
    ("min_age=abc", "min_age"),
    ("min_age=", "min_age"),
    ("min_age=-1", "min_age"),
    ("min_age=1.5", "min_age"),
    ("min_age=151", "min_age"),
    ("min_age=99999999999999999999", "min_age"),
    ("max_age=-3", "max_age"),
    ("max_age=x", "max_age"),
    ("min_age=40&max_age=20", "min_age"),
    ("min_age=1&min_age=2", "min_age"),
    ("is_image_exists=maybe", "is_image_exists"),
    ("is_image_exists=", "is_image_exists"),
    ("is_image_exists=yes", "is_image_exists"),
]
LISTING_CASES = [
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "limit"),
    ("limit=-5", "limit"),
    ("format=xml", "format"),
    ("format=", "format"),
    ("limit=5&after=" + "x" * 65, "after"),
    ("limit=5&after=%00", "after"),
]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: parameters are refused before any query, on either database."""
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


def assert_names(result, parameter: str) -> None:
    assert result.status_code == 400
    assert result.headers["content-type"] == "application/json; charset=utf-8"
    assert result.json["parameter"] == parameter
    assert result.json["description"].startswith(f"{parameter}: ")


@pytest.mark.parametrize(("query", "parameter"), FILTER_CASES)
@pytest.mark.parametrize("path", ["/data", "/stats"])
def test_bad_filter_is_a_400_naming_it(
    client: TestClient, path: str, query: str, parameter: str
) -> None:
    assert_names(client.simulate_get(path, query_string=query), parameter)


@pytest.mark.parametrize(("query", "parameter"), LISTING_CASES)
def test_bad_listing_parameter_is_a_400_naming_it(
    client: TestClient, query: str, parameter: str
) -> None:
    assert_names(client.simulate_get("/data", query_string=query), parameter)


@pytest.mark.parametrize(
    ("query", "parameter"), [("limit=0", "limit"), ("limit=101", "limit"), ("before=0", "before")]
)
def test_bad_runs_parameter_is_a_400_naming_it(
    client: TestClient, query: str, parameter: str
) -> None:
    assert_names(client.simulate_get("/runs", query_string=query), parameter)


def test_good_edge_values_are_accepted(client: TestClient) -> None:
    for query in (
        "min_age=0&max_age=150",
        "min_age=7&max_age=7",
        "limit=1",
        "limit=1000",
        "is_image_exists=TRUE",
    ):
        assert client.simulate_get("/data", query_string=query).status_code == 200, query


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/stats", "min_ag=30", "min_ag"),
        ("/stats", "limit=5", "limit"),
        ("/data", "limit=2&is_image=true", "is_image"),
        ("/data", "min_age=20&Min_Age=30", "Min_Age"),
        ("/runs", "limit=1&after=3", "after"),
        ("/runs/1", "verbose", "verbose"),
        ("/data/1", "format=csv", "format"),
        ("/data/1/image", "size=64", "size"),
        ("/health", "check=deep", "check"),
        ("/ready", "x=1", "x"),
        ("/openapi.json", "v=2", "v"),
    ],
)
def test_unknown_parameter_is_a_400_naming_it(
    client: TestClient, path: str, query: str, parameter: str
) -> None:
    assert_names(client.simulate_get(path, query_string=query), parameter)


def test_unknown_parameter_error_says_what_the_endpoint_takes(client: TestClient) -> None:
    result = client.simulate_get("/stats", query_string="min_ag=30")
    assert result.json == {
        "title": "Invalid parameter",
        "description": "min_ag: is not a query parameter of /stats; "
        "it takes is_image_exists, min_age, max_age, q",
        "parameter": "min_ag",
    }
    health = client.simulate_get("/health", query_string="check=deep")
    assert health.json["description"] == "check: is not a query parameter of /health; it takes none"


def test_link_header_keeps_the_filters_and_repeats_never_reach_it(client: TestClient) -> None:
    result = client.simulate_get("/data", query_string="min_age=20&is_image_exists=true&limit=1")
    assert result.headers["link"] == (
        '</data?min_age=20&is_image_exists=true&limit=1&after=1>; rel="next"'
    )
    repeated = client.simulate_get("/data", query_string="limit=1&after=1&after=2")
    assert_names(repeated, "after")
    assert "link" not in repeated.headers
