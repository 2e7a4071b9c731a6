"""`q` on /data, /stats and /stats/ages: a user id prefix, or part of a first or last name."""

import pytest
from falcon.testing import TestClient


def ids(result) -> list[str]:
    return [user["user_id"] for user in result.json]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("1", ["1", "10", "11", "12", "13"]),  # id prefix: no name holds a digit
        ("ada", ["1"]),  # first name, another case
        ("LOVEL", ["1"]),  # part of a last name, in capitals
        ("an", ["2", "13"]),  # Alan, Tanaka
        ("AB", ["abc"]),  # an id prefix ignores case too
        ("bc", []),  # inside an id is not a prefix
        ("ñúñ", ["3"]),  # the name starts with a capital Ñ
        ("ü", ["10"]),
        ("ZOË", ["10"]),  # case folded beyond ASCII, on SQLite too
        ("łódź", ["3"]),
        ("山", ["abc"]),
        ("O'Brien, Jr.", ["12"]),
        ("%", []),  # LIKE wildcards match only themselves
        ("_", []),
        ("a_a", []),  # would match "Ada" and "Tanaka" if _ were a wildcard
    ],
)
def test_q_finds_by_id_prefix_or_part_of_a_name(client: TestClient, q: str, expected) -> None:
    result = client.simulate_get("/data", params={"q": q})
    assert result.status_code == 200
    assert ids(result) == expected
    paged = client.simulate_get("/data", params={"q": q, "limit": 100})
    assert ids(paged) == expected
    csv_ids = [
        line.split(",")[0]
        for line in client.simulate_get(
            "/data", params={"q": q, "format": "csv"}
        ).text.splitlines()[1:]
    ]
    assert csv_ids == expected


def test_q_combines_with_the_other_filters(client: TestClient) -> None:
    # Ids starting with 1: ages 26, 22, 76, 25, 25; images on 1, 10, 13.
    query = {"q": "1", "is_image_exists": "true", "min_age": 23}
    assert ids(client.simulate_get("/data", params=query)) == ["1", "13"]


def test_paging_keeps_the_search_in_the_next_link(client: TestClient) -> None:
    first = client.simulate_get("/data", params={"q": "1", "limit": 2})
    assert ids(first) == ["1", "10"]
    link = first.headers["link"]
    assert "q=1" in link
    path, query = link[1 : link.index(">")].split("?")
    second = client.simulate_get(path, query_string=query)
    assert ids(second) == ["11", "12"]


def test_stats_and_ages_count_what_the_search_selects(client: TestClient) -> None:
    stats = client.simulate_get("/stats", params={"q": "an"}).json
    assert stats["count"] == 2
    assert stats["filters"]["q"] == "an"
    # Alan Turing and Sven Tanaka are both 25; Sven has an image.
    ages = client.simulate_get("/stats/ages", params={"q": "an"}).json
    assert ages["ages"] == [{"age": 25, "count": 2, "with_image": 1}]


@pytest.mark.parametrize("q", ["", "a\x00b", "tab\there", "x" * 201])
def test_a_bad_q_is_a_400_naming_it(client: TestClient, q: str) -> None:
    for path in ("/data", "/stats", "/stats/ages"):
        result = client.simulate_get(path, params={"q": q})
        assert result.status_code == 400, path
        assert result.json["parameter"] == "q"


def test_q_given_twice_is_refused(client: TestClient) -> None:
    result = client.simulate_get("/data", query_string="q=a&q=b")
    assert result.status_code == 400
    assert result.json["parameter"] == "q"
