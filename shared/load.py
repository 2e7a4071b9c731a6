"""Loading validated users into the store: plan the change, then write it in bulk.

The plan is pure (existing rows and the archive in, rows to insert, update and delete out),
so the rules of snapshot and merge are testable on their own. Writing goes through the
connection's `executemany`: peewee's `insert_many` builds its SQL in Python row by row and
is an order of magnitude slower on this path.
"""

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import peewee

from shared.ages import MS_PER_DAY, birthdate_of, ymd
from shared.archive import ImageRef, Member, UserRecord
from shared.db import database
from shared.models import User, sort_key

# The columns a load compares and writes, in this order, after user_id.
DATA_COLUMNS = (
    "first_name",
    "last_name",
    "birthts",
    "img_path",
    "img_fingerprint",
    "csv_fingerprint",
)


class StoredUser(NamedTuple):
    """What a load needs to know of a user already in the store."""

    first_name: str
    last_name: str
    birthts: int
    img_path: str | None
    img_fingerprint: str | None
    csv_fingerprint: str | None
    source_modified_ms: int

    def data(self) -> tuple:
        """The values in DATA_COLUMNS order, to compare with a new row."""
        return self[:6]


WRITE_CHUNK = 5_000


@dataclass
class LoadPlan:
    """What a load will change; counts for the run record come from it."""

    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0
    kept_newer: int = 0
    images_to_upload: list[ImageRef] = field(default_factory=list)
    images_to_delete: list[str] = field(default_factory=list)


def read_existing() -> dict[str, StoredUser]:
    """Every stored user, keyed by user_id, in one query."""
    query = User.select(
        User.user_id,
        User.first_name,
        User.last_name,
        User.birthts,
        User.img_path,
        User.img_fingerprint,
        User.csv_fingerprint,
        User.source_modified_ms,
    )
    return {row[0]: StoredUser._make(row[1:]) for row in database.execute(query)}


def restore_unchanged(
    existing: dict[str, StoredUser], unchanged: dict[str, Member]
) -> list[UserRecord]:
    """Records for the users whose csv file is byte for byte the one stored, from the store."""
    records = []
    for user_id, member in unchanged.items():
        old = existing[user_id]
        records.append(
            UserRecord(
                user_id,
                old.first_name,
                old.last_name,
                old.birthts,
                member.name,
                old.csv_fingerprint,
            )
        )
    return records


def plan_load(
    existing: dict[str, StoredUser],
    users: Sequence[UserRecord],
    images: dict[str, ImageRef],
    image_path: Callable[[str], str],
    mode: str,
    archive_modified_ms: int,
    in_archive: set[str],
    rejected_images: set[str],
) -> LoadPlan:
    """Decide every row's fate.

    snapshot: the archive is the whole dataset; users with no csv file in it (`in_archive`
    holds those that have one) are deleted. A user whose file is there but rejected keeps
    their stored row: the upload did not remove them, and a broken file must not lose data.
    For the same reason a user whose png is there but rejected keeps the image they had.
    merge: nobody is deleted; a row written from a newer archive than this one is kept
    (`kept_newer`), and a user without a png in this archive keeps the image they had.
    """
    plan = LoadPlan()
    for user in users:
        image = images.get(user.user_id)
        old = existing.get(user.user_id)
        if image is not None:
            img_path, img_fingerprint = image_path(user.user_id), image.fingerprint
        elif old is not None and (mode == "merge" or user.user_id in rejected_images):
            img_path, img_fingerprint = old.img_path, old.img_fingerprint
        else:
            img_path, img_fingerprint = None, None
        new = (
            user.first_name,
            user.last_name,
            user.birthts,
            img_path,
            img_fingerprint,
            user.csv_fingerprint,
        )
        if old is None:
            plan.inserts.append((user.user_id, *new))
        elif mode == "merge" and old.source_modified_ms > archive_modified_ms:
            plan.kept_newer += 1
            continue
        elif old.data() == new:
            plan.unchanged += 1
            continue
        else:
            plan.updates.append((user.user_id, *new))
            if old.img_path is not None and img_path is None:
                plan.images_to_delete.append(user.user_id)
        if image is not None and (old is None or old.img_fingerprint != img_fingerprint):
            plan.images_to_upload.append(image)
    if mode == "snapshot":
        for user_id, old in existing.items():
            if user_id not in in_archive:
                plan.deletes.append(user_id)
                if old.img_path is not None:
                    plan.images_to_delete.append(user_id)
    return plan


def apply_plan(plan: LoadPlan, run_id: int, archive_modified_ms: int, now: datetime) -> None:
    """Write the plan in bulk; the caller holds the transaction."""
    table = User._meta.table_name
    param = database.param
    stamp = now.isoformat(sep=" ")
    if plan.deletes:
        _executemany(
            f"DELETE FROM {table} WHERE user_id = {param}",  # noqa: S608 - names from the model
            ((user_id,) for user_id in plan.deletes),
        )
    if plan.updates:
        assignments = ", ".join(
            f"{column} = {param}"
            for column in (
                *DATA_COLUMNS,
                "birthdate",
                "birth_ymd",
                "source_modified_ms",
                "run_id",
                "updated_at",
            )
        )
        _executemany(
            f"UPDATE {table} SET {assignments} WHERE user_id = {param}",  # noqa: S608
            (
                (*row[1:], *_birth_columns(row[3]), archive_modified_ms, run_id, stamp, row[0])
                for row in plan.updates
            ),
        )
    if plan.inserts:
        columns = (
            "user_id",
            "sort_key",
            *DATA_COLUMNS,
            "birthdate",
            "birth_ymd",
            "source_modified_ms",
            "run_id",
            "created_at",
            "updated_at",
        )
        placeholders = ", ".join([param] * len(columns))
        _executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
            (
                (
                    row[0],
                    sort_key(row[0]),
                    *row[1:],
                    *_birth_columns(row[3]),
                    archive_modified_ms,
                    run_id,
                    stamp,
                    stamp,
                )
                for row in plan.inserts
            ),
        )


def _birth_columns(birthts: int) -> tuple[str, int]:
    """birthdate and birth_ymd; users share birth days, so the conversion is done once a day."""
    return _day_columns(birthts // MS_PER_DAY)


@functools.lru_cache(maxsize=65_536)
def _day_columns(day: int) -> tuple[str, int]:
    birthdate = birthdate_of(day * MS_PER_DAY)
    return birthdate.isoformat(), ymd(birthdate)


def _executemany(sql: str, rows: Iterable[tuple]) -> None:
    """Run one statement for many rows in chunks, through the fastest path the driver has."""
    db = database.obj
    cursor = db.cursor()
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == WRITE_CHUNK:
            _write_batch(db, cursor, sql, batch)
            batch = []
    if batch:
        _write_batch(db, cursor, sql, batch)


def _write_batch(db: peewee.Database, cursor: object, sql: str, batch: list[tuple]) -> None:
    if isinstance(db, peewee.PostgresqlDatabase):
        # psycopg2's executemany makes one round trip per row; execute_batch groups them.
        from psycopg2.extras import execute_batch

        execute_batch(cursor, sql, batch, page_size=1000)
    else:
        cursor.executemany(sql, batch)
