"""The named read queries the API serves: filtered users, their stats, and the runs.

Filtering, ordering and paging happen in SQL on indexed columns, so a million users cost
the database an index range, not Python a loop. The statistics come from the per-load
aggregate (`shared.aggregate`) when the caller has one and the filter allows, so they cost
neither; otherwise from SQL, with the same numbers.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date

import peewee
from playhouse.postgres_ext import PostgresqlExtDatabase

from shared.ages import birthts_bounds, ymd
from shared.aggregate import AgeCount, AgeTable, UserAggregate
from shared.db import SQLITE_LOWER, database
from shared.models import Run, User, sort_key, utcnow

# The columns every user listing returns, in this order. birth_ymd rather than birthdate:
# ages and ISO dates come from it by integer arithmetic, with no date object per row.
USER_COLUMNS = (
    User.user_id,
    User.first_name,
    User.last_name,
    User.birthts,
    User.birth_ymd,
    User.img_path,
)
UserRow = tuple[str, str, str, int, int, str | None]

STREAM_BATCH = 2000
# A listing sorts the users of an age range itself when there are at most this many.
SORT_AT_MOST = 5000


@dataclass(frozen=True)
class UserFilter:
    """Which users a listing or the stats cover; None means "do not filter on this"."""

    has_image: bool | None = None
    min_age: int | None = None
    max_age: int | None = None
    # Matches a user id by prefix, or part of the first or last name, ignoring case.
    search: str | None = None


def _filtered(
    query: peewee.ModelSelect, where: UserFilter, today: date, in_id_order: bool = False
) -> peewee.ModelSelect:
    """`query` restricted to the users `where` selects.

    `in_id_order` keeps the database off the birthts index (`birthts + 0` cannot use it),
    so a listing walks the id index instead; see `_listing`.
    """
    if where.has_image is True:
        query = query.where(User.img_path.is_null(False))
    elif where.has_image is False:
        query = query.where(User.img_path.is_null(True))
    birthts = User.birthts + 0 if in_id_order else User.birthts
    low, high = birthts_bounds(today, where.min_age, where.max_age)
    if low is not None:
        query = query.where(birthts >= low)
    if high is not None:
        query = query.where(birthts < high)
    if where.search is not None:
        query = query.where(_matches(where.search))
    return query


def _matches(text: str) -> peewee.Expression:
    """An id starting with `text`, or a name containing it, ignoring case.

    ILIKE on PostgreSQL, LIKE on SQLite; peewee escapes % and _, so they match themselves.
    SQLite's LIKE folds only ASCII letters, which is all an ASCII text needs; other text is
    compared with both sides folded by Python's str.lower, a function registered on each
    SQLite connection (slower: one call per row and column).
    """
    columns: tuple[peewee.Node, ...] = (User.user_id, User.first_name, User.last_name)
    if isinstance(database.obj, peewee.SqliteDatabase) and not text.isascii():
        text = text.lower()
        columns = tuple(getattr(peewee.fn, SQLITE_LOWER)(column) for column in columns)
    user_id, first_name, last_name = columns
    return user_id.startswith(text) | first_name.contains(text) | last_name.contains(text)


def _listing(where: UserFilter, today: date, after: str | None) -> peewee.ModelSelect:
    """The matching users after the id `after`, in id order.

    There are two ways to read them, each fast where the other is slow. Walking the id
    index and skipping users that do not match finishes a page after its matches: quick
    when many users match (0.2 ms for a page of ages 20 to 40 out of 100,000), slow when
    few do (it walks every id: 30 ms or more). Reading the age range from the birthts index
    and sorting it by id is quick when few match and slow when many do (60 ms for ages 20
    to 40). PostgreSQL's planner weighs this from its statistics. SQLite's has none and
    guesses, often wrongly: a bounded count of the age range, read from the covering index,
    picks the way for it, and the query is written so that it can only take that one.
    """
    walk_ids = True
    steered = isinstance(database.obj, peewee.SqliteDatabase) and (
        where.min_age is not None or where.max_age is not None
    )
    if steered:
        walk_ids = _many_in_age_range(where, today)
    query = _filtered(User.select(*USER_COLUMNS), where, today, in_id_order=steered and walk_ids)
    if after is not None:
        query = query.where(User.sort_key > sort_key(after))
    # An expression, which the id index cannot order: the age range is read and sorted.
    order = User.sort_key if walk_ids else User.sort_key.concat("")
    return query.order_by(order)


def _many_in_age_range(where: UserFilter, today: date) -> bool:
    """Whether more than SORT_AT_MOST users fall in the filter's ages (and image choice)."""
    in_range = _filtered(User.select(peewee.SQL("1")), replace(where, search=None), today)
    return in_range.limit(SORT_AT_MOST + 1).count() > SORT_AT_MOST


def users_page(
    where: UserFilter, today: date, limit: int, after: str | None = None
) -> tuple[list[UserRow], bool]:
    """Up to `limit` users after the user id `after`, in id order, and whether more remain."""
    rows = list(_listing(where, today, after).limit(limit + 1).tuples())
    return rows[:limit], len(rows) > limit


def iter_users(where: UserFilter, today: date, after: str | None = None) -> Iterator[UserRow]:
    """Every matching user (after the id `after`) in id order, read lazily so memory stays flat.

    The query runs now, so a store failure surfaces before a response starts; it is one
    statement, so the listing is one consistent snapshot even while a load commits.
    """
    query = _listing(where, today, after).tuples()
    # The driver's own cursor, read raw: these columns need no conversion, and peewee's
    # per-value conversion would cost a third of the time of a large listing.
    if isinstance(database.obj, PostgresqlExtDatabase):
        # psycopg2's ordinary cursor downloads the whole result first; a server-side
        # (named) cursor hands it over STREAM_BATCH rows at a time.
        cursor = database.execute(query, named_cursor=True, array_size=STREAM_BATCH)
        return iter(cursor.fetchone, None)
    return iter(database.execute(query))


def get_user(user_id: str) -> UserRow | None:
    """One user's row, or None when the store does not hold them."""
    return User.select(*USER_COLUMNS).where(User.user_id == user_id).tuples().first()


@dataclass(frozen=True)
class UserStats:
    count: int
    average_age: float | None
    with_image: int
    without_image: int


def _age(today: date) -> peewee.Expression:
    """Completed years in SQL: integer division is the age definition of shared.ages."""
    return (ymd(today) - User.birth_ymd) / 10_000


def _with_image() -> peewee.Function:
    return peewee.fn.SUM(peewee.Case(None, [(User.img_path.is_null(False), 1)], 0))


def _count_all() -> peewee.Function:
    # COUNT(*), not COUNT(id): PostgreSQL then answers from the covering index alone.
    return peewee.fn.COUNT(peewee.SQL("*"))


def user_stats(
    where: UserFilter,
    today: date,
    aggregate: UserAggregate | None = None,
    version: str | None = None,
) -> UserStats:
    """Count, mean age (two decimals) and image split of the matching users.

    From `aggregate` when it can answer, otherwise in one query; both give the same numbers.
    `version` is the data version when the caller has read it already.
    """
    table = _age_table(where, today, aggregate, version)
    if table is None:
        return _user_stats_in_sql(where, today)
    ages = table.select(where.has_image, where.min_age, where.max_age)
    count = sum(entry.count for entry in ages)
    images = sum(entry.with_image for entry in ages)
    total_age = sum(entry.age * entry.count for entry in ages)
    return UserStats(
        count=count,
        # The SQL's AVG: the exact sum over the count, as a float.
        average_age=round(total_age / count, 2) if count else None,
        with_image=images,
        without_image=count - images,
    )


def age_histogram(
    where: UserFilter,
    today: date,
    aggregate: UserAggregate | None = None,
    version: str | None = None,
) -> list[AgeCount]:
    """Users per completed year of age (ages with nobody left out), youngest first.

    From `aggregate` when it can answer, otherwise in one query; both give the same numbers.
    `version` is the data version when the caller has read it already.
    """
    table = _age_table(where, today, aggregate, version)
    if table is None:
        return _age_histogram_in_sql(where, today)
    return table.select(where.has_image, where.min_age, where.max_age)


def _age_table(
    where: UserFilter, today: date, aggregate: UserAggregate | None, version: str | None
) -> AgeTable | None:
    """The aggregate's table for `today`, or None when it cannot answer this filter.

    It counts by age and image only: a name search needs the rows.
    """
    if aggregate is None or where.search is not None:
        return None
    return aggregate.ages_on(today, version)


def _user_stats_in_sql(where: UserFilter, today: date) -> UserStats:
    columns = (_count_all(), peewee.fn.AVG(_age(today)), _with_image())
    query = _filtered(User.select(*columns), where, today)
    count, average, images = query.tuples().get()
    images = int(images or 0)
    return UserStats(
        count=count,
        # PostgreSQL answers a Decimal, SQLite a float.
        average_age=None if average is None else round(float(average), 2),
        with_image=images,
        without_image=count - images,
    )


def _age_histogram_in_sql(where: UserFilter, today: date) -> list[AgeCount]:
    """Grouped by the select list's first column: the age expression carries today as a bound
    parameter, and PostgreSQL would not see a second copy of it in GROUP BY as the same."""
    query = _filtered(User.select(_age(today), _count_all(), _with_image()), where, today)
    query = query.group_by(peewee.SQL("1")).order_by(peewee.SQL("1"))
    return [
        AgeCount(age=int(age), count=count, with_image=int(images or 0))
        for age, count, images in query.tuples()
    ]


def runs_page(limit: int, before: int | None = None) -> tuple[list[Run], bool]:
    """Up to `limit` runs, newest first, with ids below `before`, and whether more remain."""
    query = Run.select()
    if before is not None:
        query = query.where(Run.id < before)
    runs = list(query.order_by(Run.id.desc()).limit(limit + 1))
    return runs[:limit], len(runs) > limit


def get_run(run_id: int) -> Run | None:
    return Run.get_or_none(Run.id == run_id)


def fail_queued_run(run: Run, error: str) -> None:
    """Close a run the API queued but could not hand to the worker, saying why."""
    run.status = "failed"
    run.error = error
    run.finished_at = utcnow()
    run.save()


def user_count() -> int:
    """How many users the store holds."""
    return User.select().count()


def newest_success() -> Run | None:
    """The run that succeeded last, whatever version of which zip it loaded."""
    return Run.select().where(Run.status == "succeeded").order_by(Run.id.desc()).first()
