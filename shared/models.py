"""The store: users and processing runs, and the small queries the pipeline and worker share.

Read queries for the API (filters, stats, paging) live in `shared/queries.py`.
"""

import json
from datetime import UTC, datetime

import peewee

from shared.config import masked
from shared.db import database, ensure_schema, open_database

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "skipped", "abandoned")
MAX_USER_ID_LENGTH = 64
RUN_COUNTS = (
    "users_in_archive",
    "inserted",
    "updated",
    "deleted",
    "unchanged",
    "kept_newer",
    "rejected",
    "images",
    "images_uploaded",
    "images_deleted",
)


def utcnow() -> datetime:
    """The current UTC time without tzinfo, as the store keeps every timestamp."""
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Run(BaseModel):
    """One attempt to process one archive, from queued to its end, served by /runs."""

    source = peewee.CharField(max_length=1200)
    etag = peewee.CharField(max_length=200, null=True)
    source_modified = peewee.DateTimeField(null=True)
    # Orders versions of source zips: the object's modification time in nanoseconds since
    # 1970, from the event's sequencer, or from a listing's milliseconds without an event.
    source_version = peewee.BigIntegerField(null=True)
    trigger = peewee.CharField(max_length=20, default="event")
    mode = peewee.CharField(max_length=20, default="snapshot")
    status = peewee.CharField(max_length=20, default="queued", index=True)

    users_in_archive = peewee.IntegerField(default=0)
    inserted = peewee.IntegerField(default=0)
    updated = peewee.IntegerField(default=0)
    deleted = peewee.IntegerField(default=0)
    unchanged = peewee.IntegerField(default=0)
    kept_newer = peewee.IntegerField(default=0)
    rejected = peewee.IntegerField(default=0)
    images = peewee.IntegerField(default=0)
    images_uploaded = peewee.IntegerField(default=0)
    images_deleted = peewee.IntegerField(default=0)
    members_total = peewee.IntegerField(default=0)
    members_read = peewee.IntegerField(default=0)

    rejections_json = peewee.TextField(default="[]")
    error = peewee.TextField(null=True)
    note = peewee.TextField(null=True)
    # Steps that failed after a load committed (see shared.pipeline): the run succeeded.
    warnings_json = peewee.TextField(default="[]")

    queued_at = peewee.DateTimeField(default=utcnow)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "run"

    @property
    def rejections(self) -> list[dict[str, str]]:
        """Each rejected file as {"member", "user_id", "reason"}."""
        return json.loads(self.rejections_json)

    @rejections.setter
    def rejections(self, value: list[dict[str, str]]) -> None:
        self.rejections_json = json.dumps(value, ensure_ascii=False)

    @property
    def warnings(self) -> list[str]:
        """What failed after the commit, one sentence each; empty for a clean run."""
        return json.loads(self.warnings_json)

    @warnings.setter
    def warnings(self, value: list[str]) -> None:
        self.warnings_json = json.dumps(value, ensure_ascii=False)

    def counts(self) -> dict[str, int]:
        """What the run found and changed, as served by /runs and printed by the command line."""
        return {name: getattr(self, name) for name in RUN_COUNTS}

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class SortKeyField(peewee.CharField):
    """Text compared byte by byte on every store, as `sort_key` needs.

    SQLite compares text byte by byte. PostgreSQL follows the database's collation, and under
    a locale such as en_US it ignores punctuation and case and puts the padded numeric keys
    after the others; so there the column is declared with the "C" collation.
    """

    def ddl_datatype(self, ctx: peewee.Context) -> peewee.Node:
        data_type = super().ddl_datatype(ctx)
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            return peewee.NodeList((data_type, peewee.SQL('COLLATE "C"')))
        return data_type


class User(BaseModel):
    """One user as loaded from the newest archive that holds them.

    `sort_key`, `birth_ymd` and `source_modified_ms` are derived at load time so that
    ordering, age arithmetic and the merge rule run in SQL on indexed columns.
    """

    user_id = peewee.CharField(max_length=MAX_USER_ID_LENGTH, unique=True)
    sort_key = SortKeyField(max_length=2 * MAX_USER_ID_LENGTH + 1, unique=True)
    first_name = peewee.TextField()
    last_name = peewee.TextField()
    # Indexed through the covering index below, which starts with birthts.
    birthts = peewee.BigIntegerField()
    birthdate = peewee.DateField()
    birth_ymd = peewee.IntegerField()
    img_path = peewee.CharField(max_length=300, null=True)
    img_fingerprint = peewee.CharField(max_length=40, null=True)
    csv_fingerprint = peewee.CharField(max_length=40, null=True)
    source_modified_ms = peewee.BigIntegerField()
    # The run that last wrote the row. Neither indexed nor a foreign key: the load writes it
    # for its own run, and runs are never deleted, while PostgreSQL checks a foreign key
    # with a trigger per row, a third of a bulk merge's time (see shared.db, version 5).
    run_id = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "app_user"
        # Covers the age filter and the stats (count, mean age, image split) so /stats
        # reads only this index, never the table: 5 ms instead of 50 ms at 100k users.
        indexes = ((("birthts", "birth_ymd", "img_path"), False),)


# The user columns the API's filters and searches compare (shared.queries): a load brings
# the planner's statistics of these up to date at once (shared.db.settle), and leaves the
# others to autovacuum.
FILTERED_COLUMNS = ("user_id", "first_name", "last_name", "birthts", "birth_ymd", "img_path")

MODELS: tuple[type[BaseModel], ...] = (Run, User)


def create_schema() -> int:
    """Create or migrate the store's tables; see `shared.db.ensure_schema`. A new store's
    users table has no indexes yet: its first load builds them (`build_user_indexes`)."""
    return ensure_schema(MODELS, unindexed=(User,))


def user_indexes_missing() -> bool:
    """Whether the users' table lacks any of the indexes `User` declares."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        query = (
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s"
        )
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
    present = {row[0] for row in database.execute_sql(query, (User._meta.table_name,))}
    return any(index._name not in present for index in User._meta.fields_to_index())


def build_user_indexes() -> None:
    """Create the users' indexes that are missing.

    A new store's table has none: its first load builds them after its insert, in its
    transaction, from all the rows at once, which costs less than keeping each index in
    order row by row (timed in docs/BENCHMARKS.md). Dropping them for a load instead
    would lock PostgreSQL's readers out of the table until the commit; creating one only
    keeps other writers out, and there are none.
    """
    User._schema.create_indexes(safe=True)


class StoreError(Exception):
    """The store named by ZIPFLOW_DATABASE_URL cannot be used; the message says why."""


class StoreUnavailable(StoreError):
    """The store's server does not answer, or refuses the connection: it may come back."""


def open_store(url: str, statement_timeout_seconds: int = 0) -> peewee.Database:
    """Bind the models to the store at `url` and make its schema current (for the
    statement timeout, see `shared.db.open_database`).

    Every way this fails for a reason outside zipflow (no such database, a server that
    does not answer, a file that cannot be created, a missing driver) becomes a StoreError
    with a one-line message, so each command can say it and exit.
    """
    where = f"the store {masked(url)} (ZIPFLOW_DATABASE_URL)"
    try:
        db = open_database(url, statement_timeout_seconds)
        create_schema()
    except peewee.ImproperlyConfigured:
        raise StoreError(
            f"{where} needs the PostgreSQL driver: pip install -e '.[postgres]'"
        ) from None
    except OSError as error:
        raise StoreError(f"cannot create {where}: {error.strerror}: {error.filename}") from None
    except peewee.OperationalError as error:
        reason = " ".join(str(error).split())
        if isinstance(database.obj, peewee.SqliteDatabase):
            raise StoreError(f"cannot open {where}: {reason}") from None
        raise StoreUnavailable(f"cannot open {where}: {reason}") from None
    return db


def sort_key(user_id: str) -> str:
    """A key whose plain string order puts numeric ids in numeric order, before the others.

    "9" < "10" < "abc": digits are left-padded to a fixed width; the id itself is appended
    so that "007" and "7" stay distinct.
    """
    if user_id.isdigit():
        return user_id.rjust(MAX_USER_ID_LENGTH, "0") + user_id
    return "~" + user_id


def last_loaded_run() -> Run | None:
    """The run whose load committed last: in snapshot mode, the archive the store shows.

    Loads run one at a time (the load lock), so the last to finish is the last committed,
    whatever the versions of the archives.
    """
    return (
        Run.select()
        .where(Run.status == "succeeded")
        .order_by(Run.finished_at.desc(nulls="LAST"), Run.id.desc())
        .first()
    )


def queue_run(source: str, trigger: str) -> Run:
    """Record a run that waits for the worker, so its id can be handed out at once."""
    return Run.create(source=source, trigger=trigger, status="queued")
