"""Fill a store with demo users straight through SQL, for the API benchmarks.

A million users load through the pipeline in a minute or more; the read benchmarks need
only the rows, so they are written here in one transaction, as a load would: with a run,
the derived columns (sort key, birth date) and a data change recorded. The names,
birthdays and image share follow shared/demo.py.
"""

import random
from collections.abc import Iterator

import peewee
from psycopg2.extras import execute_values

from shared.ages import birthdate_of, ymd
from shared.db import database, record_data_change, settle
from shared.demo import BIRTH_RANGE_MS, FIRST_NAMES, IMAGE_SHARE, LAST_NAMES
from shared.models import FILTERED_COLUMNS, Run, User, build_user_indexes, sort_key, utcnow

COLUMNS = (
    "user_id",
    "sort_key",
    "first_name",
    "last_name",
    "birthts",
    "birthdate",
    "birth_ymd",
    "img_path",
    "source_modified_ms",
    "run_id",
    "created_at",
    "updated_at",
)
CHUNK = 10_000


def demo_rows(users: int, seed: int, run_id: int) -> Iterator[tuple]:
    """`users` rows with ids from 1000, the same for the same seed."""
    rng = random.Random(seed)
    stamp = utcnow().isoformat(sep=" ")
    for index in range(users):
        user_id = str(1000 + index)
        birthts = rng.randrange(*BIRTH_RANGE_MS)
        born = birthdate_of(birthts)
        image = f"images/{user_id}.png" if rng.random() < IMAGE_SHARE else None
        yield (
            user_id,
            sort_key(user_id),
            rng.choice(FIRST_NAMES),
            rng.choice(LAST_NAMES),
            birthts,
            born.isoformat(),
            ymd(born),
            image,
            0,
            run_id,
            stamp,
            stamp,
        )


def fill_users(users: int, seed: int = 2) -> None:
    """Replace the store's users with `users` demo users, in one transaction."""
    now = utcnow()
    table = User._meta.table_name
    with database.atomic():
        run = Run.create(
            source=f"bench/store_fill.py ({users} users)",
            trigger="cli",
            status="succeeded",
            users_in_archive=users,
            inserted=users,
            started_at=now,
            finished_at=now,
        )
        User.delete().execute()
        rows = demo_rows(users, seed, run.id)
        cursor = database.obj.cursor()
        columns = ", ".join(COLUMNS)
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            sql = f"INSERT INTO {table} ({columns}) VALUES %s"  # noqa: S608 - the model's names
            execute_values(cursor, sql, rows, page_size=CHUNK)
        else:
            marks = ", ".join("?" * len(COLUMNS))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)  # noqa: S608
        build_user_indexes()  # a new store's first load builds them too
        record_data_change()
    settle(table, FILTERED_COLUMNS)
