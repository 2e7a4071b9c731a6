"""The per-load aggregate gives exactly the numbers of the direct SQL, and follows the data.

Users are loaded through the pipeline with birthdays crowding the days where ages turn:
each tested day's anniversary, 28 February to 1 March of leap and common years, the turn
of the year, the first and last millisecond of a day. Both paths then answer the same
random filters on each of those days, on SQLite and PostgreSQL.
"""

import random
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared.ages import MS_PER_DAY
from shared.aggregate import UserAggregate, count_birth_days, fold_by_age
from shared.config import Settings
from shared.db import data_version, database
from shared.demo import user_csv
from shared.pipeline import Job, process
from shared.queries import UserFilter, age_histogram, user_stats
from shared.storage import LocalStore
from tests.age_days import TODAYS
from tests.shared.zips import PNG, make_zip, users_zip

# Everyone is born by the earliest day tested, so every day's ages are completed years.
LAST_BIRTH = min(TODAYS)
FILTERS_PER_DAY = 60


@pytest.fixture
def env(store_db, tmp_path) -> tuple[Settings, LocalStore]:
    settings = replace(Settings(), data_dir=tmp_path / "data")
    return settings, LocalStore(settings.data_dir, settings.processed_bucket)


def load(path: Path, env) -> None:
    settings, store = env
    run = process(Job(path, str(path)), settings, store)
    assert run.status == "succeeded", run.error


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def crowded_birthdays(rng: random.Random) -> list[date]:
    """The days where ages turn, in many years, and random days since 1900."""
    days = []
    for year in range(1900, LAST_BIRTH.year + 1):
        for month, day in {(t.month, min(t.day, 28)) for t in TODAYS} | {(2, 28), (3, 1)}:
            centre = date(year, month, day)
            days += [centre + timedelta(days=shift) for shift in (-1, 0, 1)]
    days = [day for day in rng.sample(days, 1200) if day <= LAST_BIRTH]
    days += [date(year, 2, 29) for year in range(1904, LAST_BIRTH.year, 4)]
    span = (LAST_BIRTH - date(1900, 1, 1)).days
    days += [date(1900, 1, 1) + timedelta(days=rng.randrange(span + 1)) for _ in range(400)]
    return days


def people_zip(path: Path, seed: int) -> Path:
    """About 1,700 users on crowded birthdays, a third with an image."""
    rng = random.Random(seed)
    members: dict[str, bytes] = {}
    for number, born in enumerate(crowded_birthdays(rng)):
        # The first or the last millisecond of the day, or any in between.
        birthts = day_start_ms(born) + rng.choice((0, MS_PER_DAY - 1, rng.randrange(MS_PER_DAY)))
        members[f"people/{number}.csv"] = user_csv(f"First{number}", f"Last{number}", birthts)
        if rng.random() < 0.35:
            members[f"people/{number}.png"] = PNG
    return make_zip(path, members)


def random_filter(rng: random.Random) -> UserFilter:
    has_image = rng.choice((None, True, False))
    low = rng.choice((None, rng.randrange(0, 131)))
    high = rng.choice((None, rng.randrange(low or 0, 151)))
    return UserFilter(has_image=has_image, min_age=low, max_age=high)


def test_the_aggregate_gives_the_numbers_of_the_direct_sql(env, tmp_path):
    load(people_zip(tmp_path / "people.zip", seed=13), env)
    rng = random.Random(5)
    aggregate = UserAggregate()
    compared = 0
    for today in TODAYS:
        filters = [UserFilter(), UserFilter(has_image=True), UserFilter(has_image=False)]
        filters += [random_filter(rng) for _ in range(FILTERS_PER_DAY)]
        for where in filters:
            stats = user_stats(where, today, aggregate)
            assert stats == user_stats(where, today), (today, where)
            assert age_histogram(where, today, aggregate) == age_histogram(where, today)
            compared += stats.count > 0
    assert compared > len(TODAYS) * FILTERS_PER_DAY // 2, "most filters must select someone"


def test_every_single_age_on_a_29_february_matches(env, tmp_path):
    load(people_zip(tmp_path / "people.zip", seed=29), env)
    aggregate = UserAggregate()
    today = date(2028, 2, 29)
    for age in range(0, 130):
        where = UserFilter(min_age=age, max_age=age)
        assert user_stats(where, today, aggregate) == user_stats(where, today), age


def test_the_aggregate_follows_a_load_and_the_next_day(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    aggregate = UserAggregate()
    # Everyone in users_zip is born on 2000-01-01.
    assert user_stats(UserFilter(), date(2026, 12, 31), aggregate).average_age == 26
    assert user_stats(UserFilter(), date(2027, 1, 1), aggregate).average_age == 27
    load(users_zip(tmp_path / "b.zip", ["1", "2", "3"], images=("3",)), env)
    stats = user_stats(UserFilter(), date(2027, 1, 1), aggregate)
    assert (stats.count, stats.with_image) == (3, 1)


def test_a_birth_after_today_is_left_to_the_direct_sql(env, tmp_path):
    load(people_zip(tmp_path / "people.zip", seed=3), env)
    yesterday_of_some = date(1990, 6, 1)
    assert fold_by_age(count_birth_days(), yesterday_of_some) is None
    aggregate = UserAggregate()
    for where in (UserFilter(), UserFilter(max_age=10), UserFilter(has_image=True)):
        assert user_stats(where, yesterday_of_some, aggregate) == user_stats(
            where, yesterday_of_some
        )


def test_a_name_search_is_answered_by_the_direct_sql(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1", "2", "30"]), env)
    where = UserFilter(search="last3")
    today = date(2026, 6, 15)
    assert user_stats(where, today, UserAggregate()).count == 1
    assert age_histogram(where, today, UserAggregate()) == age_histogram(where, today)


def test_the_data_version_moves_only_when_a_load_changes_the_users(env, tmp_path):
    assert data_version() == "0"
    load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    first = data_version()
    assert first != "0"
    load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    assert data_version() == first, "an unchanged reload changes nothing"
    settings, store = env
    broken = make_zip(tmp_path / "broken.zip", {"1.csv": b"first_name\nx\n"})
    assert process(Job(broken, "broken.zip"), settings, store).status == "failed"
    assert data_version() == first
    load(users_zip(tmp_path / "b.zip", ["1"]), env)
    assert data_version() not in (first, "0")


class WatchingStore(LocalStore):
    """A processed bucket that reads the data version from another connection at each write.

    Images are written inside the load's transaction, output.csv after its commit.
    """

    def __init__(self, root: Path, bucket: str) -> None:
        super().__init__(root, bucket)
        self.seen: list[tuple[str, str]] = []

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        def read() -> None:
            self.seen.append((key, data_version()))
            database.close()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        super().put(key, data, content_type, version)


def test_the_data_version_commits_with_the_users(env, tmp_path):
    settings, _ = env
    load(users_zip(tmp_path / "a.zip", ["1"]), env)
    before = data_version()
    store = WatchingStore(settings.data_dir, settings.processed_bucket)
    job = Job(users_zip(tmp_path / "b.zip", ["1", "2"], images=("2",)), "b.zip")
    assert process(job, replace(settings, image_upload_threads=1), store).status == "succeeded"
    after = data_version()
    assert after != before
    seen = dict(store.seen)
    assert seen["images/2.png"] == before, "visible before the users were"
    assert seen["output.csv"] == after, "not visible with the users"
