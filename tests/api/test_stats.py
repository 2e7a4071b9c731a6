"""GET /stats: count, mean age in SQL, image split, and the filters echoed back."""

from collections.abc import Callable
from datetime import date
from statistics import mean

import pytest
from falcon.testing import TestClient
from sample_people import PEOPLE, TODAY, counted_age


def expected(
    today: date = TODAY, image: bool | None = None, low: int | None = None, high: int | None = None
):
    chosen = [
        person
        for person in PEOPLE
        if (image is None or person.image == image)
        and (low is None or counted_age(person.born, today) >= low)
        and (high is None or counted_age(person.born, today) <= high)
    ]
    ages = [counted_age(person.born, today) for person in chosen]
    with_image = sum(person.image for person in chosen)
    return {
        "count": len(chosen),
        "average_age": round(mean(ages), 2) if ages else None,
        "with_image": with_image,
        "without_image": len(chosen) - with_image,
        "filters": {"is_image_exists": image, "min_age": low, "max_age": high, "q": None},
    }


@pytest.mark.parametrize(
    ("query", "image", "low", "high"),
    [
        ("", None, None, None),
        ("is_image_exists=true", True, None, None),
        ("is_image_exists=False", False, None, None),
        ("min_age=20&max_age=40", None, 20, 40),
        ("min_age=26", None, 26, None),
        ("max_age=25", None, None, 25),
        ("is_image_exists=1&min_age=20&max_age=40", True, 20, 40),
    ],
)
def test_stats_for_each_filter(client: TestClient, query: str, image, low, high) -> None:
    result = client.simulate_get("/stats", query_string=query)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json; charset=utf-8"
    assert result.json == expected(image=image, low=low, high=high)
    assert result.json["count"] > 0


def test_average_age_is_the_mean_of_whole_ages_to_two_decimals(client: TestClient) -> None:
    # Ages today: 26, 25, 40, 22, 76, 25, 25, 15 -> 254 / 8 = 31.75
    assert client.simulate_get("/stats").json["average_age"] == 31.75
    # 25, 22, 25, 25 -> 24.25; with image (22, 25) -> 23.5
    assert (
        client.simulate_get("/stats", query_string="min_age=20&max_age=25").json["average_age"]
        == 24.25
    )


def test_no_match_gives_zero_counts_and_a_null_average(client: TestClient) -> None:
    result = client.simulate_get("/stats", query_string="min_age=90")
    assert result.json == {
        "count": 0,
        "average_age": None,
        "with_image": 0,
        "without_image": 0,
        "filters": {"is_image_exists": None, "min_age": 90, "max_age": None, "q": None},
    }


def test_birthday_moves_a_user_between_ages(make_client: Callable[..., TestClient], loaded) -> None:
    before = make_client(today=date(2026, 6, 14)).simulate_get(
        "/stats", query_string="min_age=26&max_age=26"
    )
    on_the_day = make_client(today=date(2026, 6, 15)).simulate_get(
        "/stats", query_string="min_age=26&max_age=26"
    )
    assert before.json["count"] == 0
    assert on_the_day.json["count"] == 1


def test_29_february_today(make_client: Callable[..., TestClient], loaded) -> None:
    today = date(2028, 2, 29)
    result = make_client(today=today).simulate_get("/stats", query_string="min_age=24&max_age=27")
    assert result.json == expected(today=today, low=24, high=27)
    assert (
        result.json["count"] == 5
    )  # born 2004-02-29 (24), 2001-02-28 (27), 2001-03-01 (26), two born 2000 (27)
