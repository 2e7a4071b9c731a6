"""The per-load aggregate that answers /stats and /stats/ages without reading every user.

The users change only when a load commits, which moves `shared.db.data_version`, and a
user's age depends only on their birth date and today's date. So the users are counted
once per data version by birth date and image presence (one grouped query: at most one
row per birthday, some 45,000 for every date since 1900), and once per UTC day those
counts are folded into counts per completed year of age (some 130 rows). A request then
adds up at most that many numbers instead of scanning a million index entries.

The aggregate is rebuilt lazily, by the first request that finds it out of date, so the
load path does not change. Each API process keeps its own; nothing is shared but the store.
"""

import threading
from dataclasses import dataclass
from datetime import date

import peewee

from shared.ages import age_between, ymd
from shared.db import data_version, database
from shared.models import User

# (birth_ymd, users, users with an image), in birth_ymd order.
BirthDayCount = tuple[int, int, int]


@dataclass(frozen=True)
class AgeCount:
    """How many of the selected users have one completed year of age, and how many of them
    have an image."""

    age: int
    count: int
    with_image: int


@dataclass(frozen=True)
class AgeTable:
    """Every user counted by completed year of age on one day, youngest first."""

    ages: tuple[AgeCount, ...]

    def select(
        self, has_image: bool | None, min_age: int | None, max_age: int | None
    ) -> list[AgeCount]:
        """The counts of the users the filters select; ages with nobody are left out."""
        chosen = []
        for entry in self.ages:
            if (min_age is not None and entry.age < min_age) or (
                max_age is not None and entry.age > max_age
            ):
                continue
            if has_image is True:
                entry = AgeCount(entry.age, entry.with_image, entry.with_image)
            elif has_image is False:
                entry = AgeCount(entry.age, entry.count - entry.with_image, 0)
            if entry.count:
                chosen.append(entry)
        return chosen


def count_birth_days() -> list[BirthDayCount]:
    """Users per birth date and how many of them have an image, in one grouped query."""
    query = (
        User.select(
            User.birth_ymd, peewee.fn.COUNT(peewee.SQL("*")), peewee.fn.COUNT(User.img_path)
        )
        .group_by(User.birth_ymd)
        .order_by(User.birth_ymd)
    )
    return list(database.execute(query))


def fold_by_age(days: list[BirthDayCount], today: date) -> AgeTable | None:
    """The birth-day counts as counts per completed year of age on `today`.

    None when someone was born after `today` (a clock behind the worker's): the direct SQL
    answers such a store, since this table holds ages of people already born.
    """
    today_ymd = ymd(today)
    if days and days[-1][0] > today_ymd:
        return None
    totals: dict[int, list[int]] = {}
    for birth_ymd, count, with_image in days:
        entry = totals.setdefault(age_between(birth_ymd, today_ymd), [0, 0])
        entry[0] += count
        entry[1] += with_image
    ages = tuple(AgeCount(age, *totals[age]) for age in sorted(totals))
    return AgeTable(ages=ages)


class UserAggregate:
    """The counts for the current data version and day, shared by the API's threads.

    The data version is read before the counts, so a load committing in between can only
    make the table look older than it is, which costs one rebuild more, never a stale answer.
    """

    def __init__(self) -> None:
        self._rebuild = threading.Lock()
        self._days: tuple[str, list[BirthDayCount]] | None = None
        self._ages: tuple[str, date, AgeTable | None] | None = None

    def ages_on(self, today: date, version: str | None = None) -> AgeTable | None:
        """Every user counted by age on `today`, or None when only the direct SQL can say.

        `version` is the data version the caller read (for its ETag), so it is read once.
        """
        version = version or data_version()
        current = self._ages
        if current is not None and current[:2] == (version, today):
            return current[2]
        # One thread rebuilds; the others wait for its table rather than scan the store too.
        with self._rebuild:
            current = self._ages
            if current is not None and current[:2] == (version, today):
                return current[2]
            if self._days is None or self._days[0] != version:
                self._days = (version, count_birth_days())
            table = fold_by_age(self._days[1], today)
            self._ages = (version, today, table)
            return table
