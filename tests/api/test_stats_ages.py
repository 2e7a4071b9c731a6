"""GET /stats/ages: users per completed year of age, with the filters of /stats."""

from collections import Counter
from collections.abc import Callable
from datetime import date

import pytest
from falcon.testing import TestClient
from sample_people import PEOPLE, TODAY, counted_age


def expected_ages(
    today: date = TODAY, image: bool | None = None, low: int | None = None, high: int | None = None
) -> list[dict[str, int]]:
    counts: Counter[int] = Counter()
    images: Counter[int] = Counter()
    for person in PEOPLE:
        age = counted_age(person.born, today)
        if image is not None and person.image != image:
            continue
        if (low is not None and age < low) or (high is not None and age > high):
            continue
        counts[age] += 1
        images[age] += person.image
    return [{"age": age, "count": counts[age], "with_image": images[age]} for age in sorted(counts)]


def test_every_age_with_its_count_and_images(client: TestClient) -> None:
    result = client.simulate_get("/stats/ages")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json; charset=utf-8"
    assert result.json == {
        "filters": {"is_image_exists": None, "min_age": None, "max_age": None, "q": None},
        "ages": [
            {"age": 15, "count": 1, "with_image": 1},
            {"age": 22, "count": 1, "with_image": 1},
            {"age": 25, "count": 3, "with_image": 1},
            {"age": 26, "count": 1, "with_image": 1},
            {"age": 40, "count": 1, "with_image": 1},
            {"age": 76, "count": 1, "with_image": 0},
        ],
    }
    assert result.json["ages"] == expected_ages()


@pytest.mark.parametrize(
    ("query", "image", "low", "high"),
    [
        ("is_image_exists=true", True, None, None),
        ("is_image_exists=0", False, None, None),
        ("min_age=20&max_age=40", None, 20, 40),
        ("min_age=26", None, 26, None),
        ("is_image_exists=1&max_age=25", True, None, 25),
    ],
)
def test_filters_select_the_same_users_as_stats(
    client: TestClient, query: str, image, low, high
) -> None:
    ages = client.simulate_get("/stats/ages", query_string=query).json
    assert ages["ages"] == expected_ages(image=image, low=low, high=high)
    stats = client.simulate_get("/stats", query_string=query).json
    assert sum(row["count"] for row in ages["ages"]) == stats["count"]
    assert sum(row["with_image"] for row in ages["ages"]) == stats["with_image"]
    assert ages["filters"] == stats["filters"]


def test_a_birthday_moves_a_user_to_the_next_age(
    make_client: Callable[..., TestClient], loaded
) -> None:
    day_before = date(2026, 6, 14)
    ages = make_client(today=day_before).simulate_get("/stats/ages").json["ages"]
    assert ages == expected_ages(today=day_before)
    assert {"age": 25, "count": 4, "with_image": 2} in ages  # Ada is still 25


def test_no_match_gives_no_ages(client: TestClient, make_client, store_db) -> None:
    assert client.simulate_get("/stats/ages", query_string="min_age=90").json["ages"] == []


def test_a_bad_filter_is_a_400_naming_it(client: TestClient) -> None:
    for query, name in (
        ("min_age=x", "min_age"),
        ("min_age=5&max_age=4", "min_age"),
        ("age=3", "age"),
    ):
        result = client.simulate_get("/stats/ages", query_string=query)
        assert result.status_code == 400
        assert result.json["parameter"] == name
