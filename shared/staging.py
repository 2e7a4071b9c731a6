"""A load staged in the store: the archive's rows in staging tables, then a set-based merge.

Memory stays flat whatever the archive's size. The reader hands over one chunk at a time,
and the chunk goes to a staging table (COPY on PostgreSQL, the driver's executemany on
SQLite). What needs the whole archive is then SQL over the staged rows: the rules that
span members (a user id in two folders, an image without a csv file), and the change
itself (insert, update where changed, delete the absent users in snapshot mode, keep rows
from newer archives in merge mode), as one INSERT ... ON CONFLICT and one DELETE ... WHERE
NOT EXISTS inside the load's transaction. The staging tables belong to the load's
connection, so no reader ever sees them: temporary tables on PostgreSQL, and on SQLite
tables in a private temporary database attached for the load, because detaching it
discards them at once where dropping them walks every page (`bench/staging_bench.py`
times both). They fill before that transaction starts, so the run's progress still commits
while they do.
"""

# The SQL here is built from this module's table and column names and from numbers it
# computed itself; every value that comes from an archive is passed as a parameter or COPY data.
# ruff: noqa: S608

import contextlib
import csv
import functools
import io
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

import peewee

from shared.ages import MS_PER_DAY, birthdate_of, ymd
from shared.archive import Chunk, ImageRef, Member, Rejection, fingerprint
from shared.db import database
from shared.models import User, build_user_indexes, sort_key, user_indexes_missing

log = logging.getLogger(__name__)

USERS = "zipflow_stage_user"
IMAGES = "zipflow_stage_image"
UPLOADS = "zipflow_stage_upload"
GONE = "zipflow_stage_gone"
# SQLite's private database for the staging tables. Table names need no schema (SQLite
# looks in every attached database), index names do (or SQLite looks for the table in main).
STAGE = "zipflow_stage"

# What a staged user file is.
VALID, UNCHANGED, FAILED, DUPLICATE = 0, 1, 2, 3
# What a staged png is.
USABLE, DUPLICATE_IMAGE, NO_CSV, NOT_PNG = 0, 1, 2, 3

USER_TABLE = (
    ("seq", "BIGINT"),
    ("user_id", "TEXT"),
    ("sort_key", "TEXT"),
    ("member", "TEXT"),
    ("state", f"INTEGER DEFAULT {VALID}"),
    ("reason", "TEXT"),
    ("first_name", "TEXT"),
    ("last_name", "TEXT"),
    ("birthts", "BIGINT"),
    ("birthdate", "DATE"),
    ("birth_ymd", "INTEGER"),
    ("csv_fingerprint", "TEXT"),
    # 1 when the user's png is in the archive but rejected: they keep the image they had.
    ("keeps_image", "INTEGER"),
)
IMAGE_TABLE = (
    ("seq", "BIGINT"),
    ("user_id", "TEXT"),
    ("member", "TEXT"),
    ("flags", "INTEGER"),
    ("method", "INTEGER"),
    ("crc", "BIGINT"),
    ("compressed", "BIGINT"),
    ("size", "BIGINT"),
    ("member_offset", "BIGINT"),
    ("img_path", "TEXT"),
    ("img_fingerprint", "TEXT"),
    ("state", "INTEGER"),
    ("reason", "TEXT"),
)
# A user's data as the store keeps it: staged from a valid file, or for an unchanged file
# taken from the stored row, and written by the merge.
DATA_COLUMNS = ("sort_key", "first_name", "last_name", "birthts", "birthdate", "birth_ymd")
# Each kind of staged user file is written with the columns it fills; state defaults to VALID.
VALID_COLUMNS = ("seq", "user_id", "member", *DATA_COLUMNS, "csv_fingerprint")
UNCHANGED_COLUMNS = ("seq", "user_id", "member", "state", "csv_fingerprint")
FAILED_COLUMNS = ("seq", "user_id", "member", "state", "reason")
IMAGE_COLUMNS = tuple(column for column, _ in IMAGE_TABLE)
# The member columns of IMAGE_TABLE, in Member's order after its name.
MEMBER_COLUMNS = ("member", "flags", "method", "crc", "compressed", "size", "member_offset")
# The user columns a load compares to decide whether a stored row changed.
COMPARED = (
    "first_name",
    "last_name",
    "birthts",
    "img_path",
    "img_fingerprint",
    "csv_fingerprint",
)
PAGE = 10_000
# PostgreSQL settings for the load's connection while it stages, reset after. With the
# default 4 MB of work_mem the counts of a 100,000-user load sort on disk; the merge's
# queries look costly enough to the planner for JIT compilation, which takes longer than
# it saves on them; and the planner only needs rough statistics of the staged users (how
# many, how many distinct ids) to hash them, which a sample of 3,000 rows gives (the
# default takes 30,000). Timed per statement in docs/BENCHMARKS.md.
POSTGRES_SETTINGS = {"work_mem": "'64MB'", "jit": "off", "default_statistics_target": "10"}
# SQLite settings for the load's connection while it stages, restored after. Page caches
# of 64 MB for the store and for the staged tables instead of 2 MB each (which the merge
# of a 100,000-user load outgrows many times over), and no automatic checkpoint at the
# merge's commit, where the load would wait while the write-ahead log is copied into the
# database file: `shared.db.settle` runs it beside the export. The staging database's
# cache goes with it.
SQLITE_SETTINGS = {"cache_size": -65_536, "wal_autocheckpoint": 0}
STAGE_CACHE_SIZE = -65_536


@dataclass
class Found:
    """What the archive holds once the rules that span members are applied."""

    users: int
    images: int
    rejections: list[Rejection]


@dataclass
class Changes:
    """What the merge will do, counted before it does it."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_newer: int = 0
    deleted: int = 0
    images_uploaded: int = 0
    images_deleted: int = 0

    @property
    def writes(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)


class Staging:
    """The staged rows of one load, on the load's own connection; use it in a `with`."""

    def __init__(self) -> None:
        self.postgres = isinstance(database.obj, peewee.PostgresqlDatabase)
        # Null-safe inequality: SQLite's IS NOT is PostgreSQL's IS DISTINCT FROM.
        self.differs = "IS DISTINCT FROM" if self.postgres else "IS NOT"
        self.table = User._meta.table_name
        self.refused: list[Rejection] = []
        self._mode = "snapshot"
        self._archive_ms = 0
        self._changes = Changes()
        self._store_empty = (
            database.execute_sql(f"SELECT 1 FROM {self.table} LIMIT 1").fetchone() is None
        )
        # What SQLITE_SETTINGS replaced, for `_drop` to put back.
        self._sqlite_defaults: dict[str, int] = {}
        self._drop()
        if self.postgres:
            for name, value in POSTGRES_SETTINGS.items():
                database.execute_sql(f"SET {name} = {value}")
        else:
            self._sqlite_defaults = {
                name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]
                for name in SQLITE_SETTINGS
            }
            for name, value in SQLITE_SETTINGS.items():
                database.execute_sql(f"PRAGMA {name} = {value}")
            # An empty file name: SQLite's private temporary database, gone when detached.
            database.execute_sql(f"ATTACH DATABASE '' AS {STAGE}")
            database.execute_sql(f"PRAGMA {STAGE}.cache_size = {STAGE_CACHE_SIZE}")
        for name, columns in ((USERS, USER_TABLE), (IMAGES, IMAGE_TABLE)):
            definition = ", ".join(f"{column} {kind}" for column, kind in columns)
            self._create_table(name, definition)
        self._create_table(
            UPLOADS,
            f"seq BIGINT, user_id TEXT,"
            f" {', '.join(f'{column} {kind}' for column, kind in IMAGE_TABLE[2:9])}",
        )
        self._create_table(GONE, "user_id TEXT")

    def __enter__(self) -> "Staging":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._drop()
        except peewee.PeeweeException as failure:
            # After a failed load, perhaps with the connection: the tables go with the
            # session then, and a second error must not hide the first. After a load that
            # committed, the run succeeded whatever happens to its scratch tables; the next
            # load's `_drop` tries again before it stages anything.
            if error is None:
                log.warning("could not drop the staging tables: %s", failure)

    def _create_table(self, name: str, definition: str) -> None:
        if self.postgres:
            database.execute_sql(f"CREATE TEMPORARY TABLE {name} ({definition})")
        else:
            database.execute_sql(f"CREATE TABLE {STAGE}.{name} ({definition})")

    def _create_index(self, table: str, column: str) -> None:
        schema = "" if self.postgres else f"{STAGE}."
        database.execute_sql(f"CREATE INDEX {schema}{table}_{column} ON {table} ({column})")

    def _drop(self) -> None:
        """Drop the staged tables (on SQLite, detach their database) and put the
        connection's settings back."""
        if self.postgres:
            for name in (USERS, IMAGES, UPLOADS, GONE):
                database.execute_sql(f"DROP TABLE IF EXISTS {name}")
            for name in POSTGRES_SETTINGS:
                database.execute_sql(f"RESET {name}")
            return
        attached = [row[1] for row in database.execute_sql("PRAGMA database_list").fetchall()]
        if STAGE in attached:
            database.execute_sql(f"DETACH DATABASE {STAGE}")
        for name, value in self._sqlite_defaults.items():
            database.execute_sql(f"PRAGMA {name} = {value}")

    @property
    def known(self) -> Callable[[list[str]], dict[str, str]] | None:
        """What `Archive.scan` asks for the stored fingerprints; None when nothing is stored."""
        return None if self._store_empty else stored_fingerprints

    def add(self, rows: "Rows") -> None:
        """Stage one chunk of the archive, made into rows by `staged_rows` (as CSV text
        on PostgreSQL, `as_csv`)."""
        with database.atomic():
            self._write(USERS, VALID_COLUMNS, rows.users)
            self._write(USERS, UNCHANGED_COLUMNS, rows.unchanged)
            self._write(USERS, FAILED_COLUMNS, rows.failed)
            self._write(IMAGES, IMAGE_COLUMNS, rows.images)
        self.refused += rows.refused

    @property
    def as_csv(self) -> bool:
        """Whether `staged_rows` should write the rows as CSV text: PostgreSQL COPYs it."""
        return self.postgres

    def _write(self, table: str, columns: tuple[str, ...], rows: "Batch") -> None:
        if not rows:
            return
        names = ", ".join(columns)
        cursor = database.cursor()
        if isinstance(rows, str):  # PostgreSQL's, written by staged_rows (`as_csv`)
            text = io.StringIO(rows)
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)", text)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def resolve(self) -> Found:
        """Apply the rules that span members, and list every rejection in reading order."""
        # PostgreSQL joins the staged users by hashing, given their statistics; SQLite
        # needs an index.
        if self.postgres:
            database.execute_sql(f"ANALYZE {USERS} (user_id, state)")
        else:
            self._create_index(USERS, "user_id")
        self._create_index(IMAGES, "user_id")
        self._create_index(IMAGES, "seq")
        duplicated = {
            name: database.execute_sql(
                f"UPDATE {name} SET state = {state} WHERE user_id IN"
                f" (SELECT user_id FROM {name} GROUP BY user_id HAVING count(*) > 1)"
            ).rowcount
            for name, state in ((USERS, DUPLICATE), (IMAGES, DUPLICATE_IMAGE))
        }
        database.execute_sql(
            f"UPDATE {IMAGES} SET state = {NO_CSV} WHERE state IN ({USABLE}, {NOT_PNG})"
            f" AND NOT EXISTS (SELECT 1 FROM {USERS} s WHERE s.user_id = {IMAGES}.user_id)"
        )
        database.execute_sql(
            f"UPDATE {USERS} SET keeps_image = 1 WHERE user_id IN"
            f" (SELECT user_id FROM {IMAGES} WHERE state IN ({DUPLICATE_IMAGE}, {NOT_PNG}))"
        )
        if self.postgres:
            database.execute_sql(f"ANALYZE {IMAGES}")
        rejections = list(self.refused)
        # Listing them reads every staged row, so only when there are some.
        if duplicated[USERS]:
            rejections += self._duplicates(USERS, DUPLICATE, "csv")
        if duplicated[IMAGES]:
            rejections += self._duplicates(IMAGES, DUPLICATE_IMAGE, "png")
        rows = database.execute_sql(
            f"SELECT member, user_id, reason FROM {USERS} WHERE state = {FAILED} ORDER BY seq"
        )
        rejections += [Rejection(*row) for row in rows]
        # A png that is no PNG image is reported when its user loads; otherwise the user's
        # own rejection says enough.
        rows = database.execute_sql(
            f"SELECT p.member, p.user_id, p.reason FROM {IMAGES} p JOIN {USERS} s"
            f" ON s.user_id = p.user_id AND s.state IN ({VALID}, {UNCHANGED})"
            f" WHERE p.state = {NOT_PNG} ORDER BY p.seq"
        )
        rejections += [Rejection(*row) for row in rows]
        rows = database.execute_sql(
            f"SELECT member, user_id FROM {IMAGES} WHERE state = {NO_CSV} ORDER BY seq"
        )
        rejections += [Rejection(*row, "image without a csv file") for row in rows]
        users, images = database.execute_sql(
            f"SELECT count(*), count(p.user_id) FROM {USERS} s"
            f" LEFT JOIN {IMAGES} p ON p.user_id = s.user_id AND p.state = {USABLE}"
            f" WHERE s.state IN ({VALID}, {UNCHANGED})"
        ).fetchone()
        return Found(users, images, rejections)

    def _duplicates(self, table: str, state: int, kind: str) -> list[Rejection]:
        rows = database.execute_sql(
            f"SELECT user_id, member FROM {table} WHERE state = {state} ORDER BY user_id, seq"
        ).fetchall()
        members: dict[str, list[str]] = {}
        for user_id, member in rows:
            members.setdefault(user_id, []).append(member)
        rejections = []
        for user_id, names in members.items():
            listed = ", ".join(names)
            reason = f"user id {user_id} has {len(names)} {kind} files ({listed})"
            rejections += [Rejection(name, user_id, reason) for name in names]
        return rejections

    def plan(self, mode: str, archive_ms: int, found: Found) -> Changes:
        """Count what the merge will change, and note the images to upload and delete.

        snapshot: the archive is the whole dataset; users with no csv file in it are
        deleted. A user whose file is there but rejected keeps their stored row (the upload
        did not remove them, and a broken file must not lose data), and a user whose png is
        there but rejected keeps the image they had. merge: nobody is deleted; a row written
        from a newer archive than this one is kept (`kept_newer`), and a user without a png
        in this archive keeps the image they had.

        `found` is what `resolve` counted. Into a store that was empty, every user it
        counted is inserted with the image it counted, so they are not compared again.
        """
        self._mode, self._archive_ms = mode, int(archive_ms)
        incoming = self._incoming()
        loses_image = "change = 'updated' AND old_img_path IS NOT NULL AND img_path IS NULL"
        if self._store_empty:
            changes = Changes(inserted=found.users, images_uploaded=found.images)
        else:
            changes = Changes()
            rows = database.execute_sql(
                "SELECT change, count(*),"
                f" sum(CASE WHEN {self._uploads_when()} THEN 1 ELSE 0 END),"
                f" sum(CASE WHEN {loses_image} THEN 1 ELSE 0 END)"
                f" FROM ({incoming}) AS i GROUP BY change"
            )
            for change, count, uploads, losses in rows:
                setattr(changes, change, count)
                changes.images_uploaded += uploads or 0
                changes.images_deleted += losses or 0
        self._changes = changes
        # Each pass below is skipped when the counts say it would find nothing.
        if changes.images_uploaded:
            database.execute_sql(
                f"INSERT INTO {UPLOADS} SELECT p.seq, p.user_id, "
                + ", ".join(f"p.{column}" for column in MEMBER_COLUMNS)
                + f" FROM ({incoming}) AS i JOIN {IMAGES} p ON p.seq = i.image_seq"
                f" WHERE {self._uploads_when()}"
            )
            self._create_index(UPLOADS, "seq")
        if changes.images_deleted:
            database.execute_sql(
                f"INSERT INTO {GONE} SELECT user_id FROM ({incoming}) AS i WHERE {loses_image}"
            )
        if mode == "snapshot":
            changes.deleted = database.execute_sql(
                f"SELECT count(*) FROM {self.table} WHERE {self._absent()}"
            ).fetchone()[0]
        if changes.deleted:
            changes.images_deleted += database.execute_sql(
                f"INSERT INTO {GONE} SELECT user_id FROM {self.table}"
                f" WHERE img_path IS NOT NULL AND {self._absent()}"
            ).rowcount
        return changes

    def apply(self, run_id: int, now: datetime) -> None:
        """Write the change `plan` counted; the caller holds the transaction."""
        if self._changes.deleted:
            database.execute_sql(f"DELETE FROM {self.table} WHERE {self._absent()}")
        if not (self._changes.inserted or self._changes.updated):
            return
        written = (*DATA_COLUMNS, "img_path", "img_fingerprint", "csv_fingerprint")
        updated = (*written[1:], "source_modified_ms", "run_id", "updated_at")
        # Only loads write users, one at a time (`load_lock`), so into a store that was empty
        # when this load began nothing can conflict; PostgreSQL's check would cost a quarter
        # of the insert.
        upsert = (
            ""
            if self._store_empty
            else (
                " ON CONFLICT (user_id) DO UPDATE SET "
                + ", ".join(f"{column} = excluded.{column}" for column in updated)
            )
        )
        param = database.param
        stamp = now.isoformat(sep=" ")
        with self._with_user_indexes():
            database.execute_sql(
                f"INSERT INTO {self.table} (user_id, {', '.join(written)}, source_modified_ms,"
                f" run_id, created_at, updated_at)"
                f" SELECT user_id, {', '.join(written)}, {self._archive_ms}, {param}, {param},"
                f" {param} FROM ({self._incoming()}) AS i WHERE change IN ('inserted', 'updated')"
                + upsert,
                (run_id, stamp, stamp),
            )

    @contextlib.contextmanager
    def _with_user_indexes(self) -> Iterator[None]:
        """The merge, leaving the users' indexes in place: built after it on a store that
        was empty and has none yet (a new one: see `build_user_indexes`), and before it on
        a store that holds users without them (as a load by an earlier zipflow may leave
        one), whose upsert needs the unique ones.
        """
        missing = user_indexes_missing()
        if missing and not self._store_empty:
            build_user_indexes()
        yield
        if missing and self._store_empty:
            build_user_indexes()

    def uploads(self) -> Iterator[list[ImageRef]]:
        """The images the merge writes that are new or changed, a page at a time."""
        columns = ", ".join(MEMBER_COLUMNS)
        last = -1
        while True:
            rows = database.execute_sql(
                f"SELECT seq, user_id, {columns} FROM {UPLOADS}"
                f" WHERE seq > {database.param} ORDER BY seq LIMIT {PAGE}",
                (last,),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_image_ref(row[1], Member(*row[2:])) for row in rows]

    def images_to_delete(self) -> Iterator[str]:
        """The user ids whose stored image the merge dropped: updated without one, or gone."""
        cursor = database.execute_sql(f"SELECT user_id FROM {GONE}")
        while rows := cursor.fetchmany(PAGE):
            yield from (row[0] for row in rows)

    def _absent(self) -> str:
        """Stored users with no csv file in the archive (a rejected file still counts)."""
        return f"NOT EXISTS (SELECT 1 FROM {USERS} s WHERE s.user_id = {self.table}.user_id)"

    def _uploads_when(self) -> str:
        return (
            "i.image_seq IS NOT NULL AND change IN ('inserted', 'updated')"
            f" AND i.img_fingerprint {self.differs} i.old_img_fingerprint"
        )

    def _incoming(self) -> str:
        """Every loadable staged user beside their stored row, with what the merge does to it.

        `change` is one of inserted, kept_newer, unchanged, updated: the Changes fields.
        A user whose file is unchanged was staged without its data, which the store holds.
        """
        merge = "TRUE" if self._mode == "merge" else "FALSE"
        kept_image = f"({merge} OR s.keeps_image = 1)"
        differs = " OR ".join(f"n.{column} {self.differs} n.old_{column}" for column in COMPARED)
        return (
            "SELECT n.*, CASE WHEN n.old_user_id IS NULL THEN 'inserted'"
            f" WHEN {merge} AND n.old_source_modified_ms > {self._archive_ms} THEN 'kept_newer'"
            f" WHEN {differs} THEN 'updated' ELSE 'unchanged' END AS change"
            " FROM (SELECT s.user_id, s.csv_fingerprint, p.seq AS image_seq,"
            + "".join(f" COALESCE(s.{column}, u.{column}) AS {column}," for column in DATA_COLUMNS)
            + f" CASE WHEN p.seq IS NOT NULL THEN p.img_path WHEN {kept_image} THEN u.img_path"
            " END AS img_path,"
            f" CASE WHEN p.seq IS NOT NULL THEN p.img_fingerprint WHEN {kept_image}"
            " THEN u.img_fingerprint END AS img_fingerprint,"
            + "".join(f" u.{column} AS old_{column}," for column in (*COMPARED, "user_id"))
            + " u.source_modified_ms AS old_source_modified_ms"
            f" FROM {USERS} s"
            f" LEFT JOIN {IMAGES} p ON p.user_id = s.user_id AND p.state = {USABLE}"
            f" LEFT JOIN {self.table} u ON u.user_id = s.user_id"
            f" WHERE s.state IN ({VALID}, {UNCHANGED})) AS n"
        )


# What makes the csv module quote a field, given csv_text's line ends.
CSV_QUOTED = re.compile(r'[",\r\n]')
# One table's rows of a chunk: plain tuples, or the CSV text that PostgreSQL's COPY reads.
# Either travels from a helper process cheaply (see `shared.reading`), and text is written
# there, on the core the loading process does not use.
Batch = list[tuple] | str


@dataclass
class Rows:
    """One chunk of the archive as staging rows. `read` counts the entries read so far,
    and `unpacked` is what this chunk's members unpack to, in bytes."""

    users: Batch
    unchanged: Batch
    failed: Batch
    images: Batch
    refused: list[Rejection]
    read: int
    unpacked: int


def staged_rows(chunk: Chunk, image_path: Callable[[str], str], as_csv: bool = False) -> Rows:
    """The staging rows of one chunk, each numbered (`seq`) by reading order; with
    `as_csv`, each table's rows as CSV text.

    A chunk yields at most one row per entry, so numbering from the chunk's first entry
    keeps every number unique and in order, whichever process builds the rows.
    """
    numbers = itertools.count(chunk.first)
    users: list[tuple] = []
    for user in chunk.users:
        birthdate, birth_ymd = _birth_columns(user.birthts)
        users.append(
            (
                next(numbers),
                user.user_id,
                user.member,
                sort_key(user.user_id),
                user.first_name,
                user.last_name,
                user.birthts,
                birthdate,
                birth_ymd,
                user.csv_fingerprint,
            )
        )
    # An unchanged user is staged with only what tells them apart (the merge reads the
    # rest from their stored row), which makes a reload's staging four times cheaper.
    unchanged = [
        (next(numbers), user_id, member, UNCHANGED, csv_fingerprint)
        for user_id, member, csv_fingerprint in chunk.unchanged
    ]
    failed = [
        (next(numbers), rejection.user_id, rejection.member, FAILED, rejection.reason)
        for rejection in chunk.failed
    ]
    images = [
        (
            next(numbers),
            image.user_id,
            *image.member,
            image_path(image.user_id),
            image.fingerprint,
            USABLE,
            None,
        )
        for image in chunk.images
    ]
    images += [
        (next(numbers), rejection.user_id, rejection.member)
        + (None,) * 8
        + (NOT_PNG, rejection.reason)
        for rejection in chunk.not_png
    ]
    tables = (users, unchanged, failed, images)
    if not as_csv:
        return Rows(*tables, chunk.refused, chunk.read, chunk.unpacked)
    text = [valid_users_csv(users), *(csv_text(rows) for rows in tables[1:])]
    return Rows(*text, chunk.refused, chunk.read, chunk.unpacked)


def csv_text(rows: list[tuple]) -> str:
    """`rows` as the CSV that PostgreSQL's COPY reads (Python's csv module writes it in C).

    No staged text is ever empty, so an empty unquoted field can only be a NULL; "\r\n"
    line ends make the writer quote any field holding either character.
    """
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    return text.getvalue()


def valid_users_csv(rows: list[tuple]) -> str:
    """`csv_text(rows)` for the valid users' rows of `staged_rows` (VALID_COLUMNS), in less
    time (`bench/staging_bench.py` times both): nearly every row's text holds no quote,
    comma or line break and no NULL, so it is written as it stands; any other row goes
    through the csv module."""
    lines = []
    for row in rows:
        seq, user_id, member, key, first, last, birthts, birthdate, birth_ymd, printed = row
        text = f"{user_id}{member}{key}{first}{last}{birthdate}{printed}"
        if None in row or CSV_QUOTED.search(text):
            lines.append(csv_text([row]))
        else:
            lines.append(
                f"{seq},{user_id},{member},{key},{first},{last},{birthts},{birthdate},"
                f"{birth_ymd},{printed}\r\n"
            )
    return "".join(lines)


def stored_fingerprints(user_ids: list[str]) -> dict[str, str]:
    """The csv fingerprint stored for each of these users that the store holds."""
    if not user_ids:
        return {}
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        where, value = "user_id = ANY(%s)", user_ids
    else:
        where, value = "user_id IN (SELECT value FROM json_each(?))", json.dumps(user_ids)
    cursor = database.execute_sql(
        f"SELECT user_id, csv_fingerprint FROM {User._meta.table_name} WHERE {where}",
        (value,),
    )
    return dict(cursor.fetchall())


def _image_ref(user_id: str, member: Member) -> ImageRef:
    return ImageRef(user_id, member, fingerprint(member))


def _birth_columns(birthts: int) -> tuple[str, int]:
    """birthdate and birth_ymd; users share birth days, so the conversion is done once a day."""
    return _day_columns(birthts // MS_PER_DAY)


@functools.lru_cache(maxsize=65_536)
def _day_columns(day: int) -> tuple[str, int]:
    birthdate = birthdate_of(day * MS_PER_DAY)
    return birthdate.isoformat(), ymd(birthdate)
