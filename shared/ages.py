"""The calendar of zipflow: birth dates from `birthts`, the one definition of age, and the
`birthts` bounds that select an age range.

Age is counted as people count it: completed years on today's UTC date. With dates
written as YYYYMMDD integers that is `(today_ymd - birth_ymd) // 10000`, exact for every
date, 29 February included: someone born on 29 February becomes a year older on
1 March in common years, and `birth_ymd` orders with the calendar.

The store keeps `birthts` (ms since the epoch, UTC) indexed, so an age range becomes a
`birthts` range computed here from the same rule, and the filter runs in SQL.
"""

from datetime import UTC, date, datetime, timedelta

MS_PER_DAY = 86_400_000
EPOCH = date(1970, 1, 1)


def birthdate_of(birthts: int) -> date:
    """The UTC calendar date of a birth instant in ms; floor division keeps pre-1970 right."""
    return EPOCH + timedelta(days=birthts // MS_PER_DAY)


def utc_today() -> date:
    """Today's date in UTC, the day every age is counted on."""
    return datetime.now(UTC).date()


def ymd(day: date) -> int:
    """A date as the YYYYMMDD integer the store keeps in `User.birth_ymd`."""
    return day.year * 10_000 + day.month * 100 + day.day


def age_between(birth_ymd: int, today_ymd: int) -> int:
    """Completed years from a YYYYMMDD birth date to a YYYYMMDD today: the definition of age."""
    return (today_ymd - birth_ymd) // 10_000


def age_on(birthdate: date, today: date) -> int:
    """Completed years between `birthdate` and `today`."""
    return age_between(ymd(birthdate), ymd(today))


def iso_from_ymd(value: int) -> str:
    """A YYYYMMDD integer as an ISO date, without building a date object per row."""
    return f"{value // 10_000:04d}-{value // 100 % 100:02d}-{value % 100:02d}"


def _day_start_ms(day: date) -> int:
    return (day - EPOCH).days * MS_PER_DAY


def _last_birthdate_for_age(today: date, years: int) -> date | None:
    """The latest birth date of someone at least `years` old today, None before year 1.

    It is today's month and day `years` earlier, or 28 February when that is a
    29 February that year does not have: the largest real date whose YYYYMMDD is at
    most `ymd(today) - years * 10000`.
    """
    year = today.year - years
    if year < 1:
        return None
    try:
        return today.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def birthts_bounds(
    today: date, min_age: int | None, max_age: int | None
) -> tuple[int | None, int | None]:
    """The half-open `birthts` range [low, high) of users aged min_age..max_age today.

    Either bound is None when it does not restrict anyone. An empty range (low >= high)
    means nobody matches.
    """
    low = high = None
    if min_age is not None:
        latest = _last_birthdate_for_age(today, min_age)
        # Nobody was born before year 1, so an age that large selects no one.
        high = _day_start_ms(latest + timedelta(days=1)) if latest else _day_start_ms(date.min)
    if max_age is not None:
        too_old = _last_birthdate_for_age(today, max_age + 1)
        if too_old is not None:
            low = _day_start_ms(too_old + timedelta(days=1))
    return low, high
