"""output.csv, written from the store: every user, numeric ids in numeric order.

Rows stream from the store to the file, so a store of millions of users is never held in
memory. PostgreSQL writes the CSV itself (`COPY ... TO STDOUT`, with no Python work per
row); from SQLite the raw cursor's rows go to Python's csv writer (peewee's per-value
conversion would double the cost of a 1M-row export), and a large store is written by two
processes at once: the loading process writes the first half of the ids, a reading helper
(`shared.reading`) the second half into a file of its own, which is appended. Every way
writes the same bytes: no text in the store is empty, and a user without an image has an
empty, unquoted img_path.
"""

import csv
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TextIO

import peewee

from shared import reading
from shared.db import database, open_database
from shared.models import User

log = logging.getLogger(__name__)

OUTPUT_HEADER = ("user_id", "first_name", "last_name", "birthts", "img_path")
# Below this many users one process writes output.csv alone: a few hundredths of a
# second of writing, not worth handing half to a helper (a judgment, not a measurement;
# starting a helper that is not running yet costs about 0.1 s).
SPLIT_FROM_USERS = 20_000


def export_csv(path: Path, database_url: str = "", processes: int = 1) -> Path:
    """Write output.csv from the store to `path`, and return it.

    With `processes` above 1, a SQLite store at `database_url` of at least SPLIT_FROM_USERS
    users is written in two halves at once; should the helper fail, this process writes
    the whole file again by itself.
    """
    with path.open("w", encoding="utf-8", newline="") as out, database.atomic():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            select, params = _users(for_copy=True).order_by(User.sort_key).sql()
            cursor = database.cursor()
            query = cursor.mogrify(select, params).decode()
            cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", out)
            return path
        csv.writer(out, lineterminator="\n").writerow(OUTPUT_HEADER)
        middle = _middle_key() if processes > 1 and database_url else None
        if middle is None:
            _write_rows(out, _users())
            return path
        try:
            _write_in_halves(out, database_url, middle)
        except reading.HelperFailed as error:
            log.warning(
                "the helper writing half of output.csv failed (%s): writing it all here", error
            )
            out.seek(0)
            out.truncate()
            csv.writer(out, lineterminator="\n").writerow(OUTPUT_HEADER)
            _write_rows(out, _users())
    return path


def _write_in_halves(out: TextIO, database_url: str, middle: str) -> None:
    """The users before the sort key `middle` written here, the others by a helper."""
    with tempfile.TemporaryDirectory(prefix="zipflow-export-") as scratch:
        second_half = Path(scratch) / "second-half.csv"
        with reading.in_helper(_write_second_half, database_url, middle, second_half) as helped:
            _write_rows(out, _users().where(User.sort_key < middle) if helped else _users())
        if helped:
            with second_half.open(encoding="utf-8", newline="") as rest:
                shutil.copyfileobj(rest, out)


def _users(for_copy: bool = False) -> peewee.ModelSelect:
    """The columns of output.csv, in its order. An image-less user's img_path is an empty
    string for Python's csv writer, and NULL for COPY, which writes NULL as an empty field
    (and would quote an empty string)."""
    image = User.img_path if for_copy else peewee.fn.COALESCE(User.img_path, "")
    return User.select(User.user_id, User.first_name, User.last_name, User.birthts, image)


def _write_rows(out: TextIO, query: peewee.ModelSelect) -> None:
    csv.writer(out, lineterminator="\n").writerows(database.execute(query.order_by(User.sort_key)))


def _middle_key() -> str | None:
    """The sort key that splits the users in two halves, or None for a small store."""
    users = User.select().count()
    if users < SPLIT_FROM_USERS:
        return None
    return User.select(User.sort_key).order_by(User.sort_key).offset(users // 2).scalar()


def _write_second_half(database_url: str, middle: str, path: Path) -> None:
    """In a reading helper: the users from the sort key `middle` on, into `path`."""
    open_database(database_url)
    try:
        with path.open("w", encoding="utf-8", newline="") as out, database.atomic():
            _write_rows(out, _users().where(User.sort_key >= middle))
    finally:
        database.close()
