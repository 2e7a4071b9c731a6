"""The one age definition, and the birthts bounds that must select exactly those ages."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sample_people import counted_age

from shared.ages import MS_PER_DAY, age_between, age_on, birthts_bounds, iso_from_ymd, ymd
from tests.age_days import TODAYS


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def births_near_boundaries(today: date) -> list[date]:
    """For 0..100 years back: the days around the anniversary and around 29 February."""
    days = set()
    for years in range(0, 101):
        year = today.year - years
        for month, day in ((today.month, min(today.day, 28)), (2, 28), (3, 1)):
            centre = date(year, month, day)
            days.update(centre + timedelta(days=shift) for shift in range(-3, 4))
    return sorted(day for day in days if day <= today)


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2000, 6, 15), date(2026, 6, 14), 25),
        (date(2000, 6, 15), date(2026, 6, 15), 26),
        (date(2004, 2, 29), date(2026, 2, 28), 21),
        (date(2004, 2, 29), date(2026, 3, 1), 22),
        (date(2004, 2, 29), date(2028, 2, 28), 23),
        (date(2004, 2, 29), date(2028, 2, 29), 24),
        (date(2001, 2, 28), date(2028, 2, 29), 27),
        (date(2001, 3, 1), date(2028, 2, 29), 26),
        (date(2026, 6, 15), date(2026, 6, 15), 0),
    ],
)
def test_age_is_completed_years_on_the_utc_date(born: date, today: date, age: int) -> None:
    assert age_on(born, today) == age
    assert age_between(ymd(born), ymd(today)) == age
    assert iso_from_ymd(ymd(born)) == born.isoformat()
    assert counted_age(born, today) == age


@pytest.mark.parametrize("today", TODAYS, ids=str)
def test_birthts_bounds_select_exactly_the_ages_in_range(today: date) -> None:
    for born in births_near_boundaries(today):
        age = counted_age(born, today)
        assert age_on(born, today) == age
        # Asking for the age itself and its neighbours crosses every boundary there is.
        for years in (age - 1, age, age + 1):
            if years < 0:
                continue
            at_least = birthts_bounds(today, years, None)
            at_most = birthts_bounds(today, None, years)
            exactly = birthts_bounds(today, years, years)
            # The first and the last millisecond of the birth day must fall alike.
            for birthts in (day_start_ms(born), day_start_ms(born) + MS_PER_DAY - 1):
                assert inside(birthts, at_least) == (age >= years), (born, years)
                assert inside(birthts, at_most) == (age <= years), (born, years)
                assert inside(birthts, exactly) == (age == years), (born, years)


def inside(birthts: int, bounds: tuple[int | None, int | None]) -> bool:
    low, high = bounds
    return (low is None or birthts >= low) and (high is None or birthts < high)


def test_no_bounds_without_ages() -> None:
    assert birthts_bounds(date(2026, 6, 15), None, None) == (None, None)


def test_an_age_beyond_the_calendar_selects_nobody_as_minimum_and_everybody_as_maximum() -> None:
    today = date(2026, 6, 15)
    _, high = birthts_bounds(today, 3000, None)
    assert high is not None and high <= day_start_ms(date(1, 1, 1))
    assert birthts_bounds(today, None, 3000) == (None, None)
