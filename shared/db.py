"""Binding the models to a database named by URL, and keeping its schema current.

The models use one `DatabaseProxy`; each process binds it once from its settings, and
tests bind it to their own database.
"""

import fcntl
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import peewee
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

database = peewee.DatabaseProxy()
log = logging.getLogger(__name__)

# SQLite serves the API's reads while the worker writes: WAL lets readers see the last
# commit without waiting, and the busy timeout makes a second writer wait, not fail.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "synchronous": "normal",
    "foreign_keys": 1,
}

# SQLite's LOWER() and LIKE fold ASCII letters only; searches call this function instead,
# registered on every SQLite connection, so "ñ" finds "Ñúñez" as it does on PostgreSQL.
SQLITE_LOWER = "zipflow_lower"

Migration = Callable[[SchemaMigrator], None]


def _add_run_warnings(migrator: SchemaMigrator) -> None:
    """Version 2: runs record the steps that failed after their commit."""
    migrate(migrator.add_column("run", "warnings_json", peewee.TextField(default="[]")))


class SchemaVersion(peewee.Model):
    """One row holding the schema version this database has reached."""

    version = peewee.IntegerField()

    class Meta:
        database = database
        table_name = "schema_version"


class DataVersion(peewee.Model):
    """One row that changes whenever a load changes the users, in that load's transaction.

    Readers compare it instead of the rows: the API's ETags and its per-load aggregate
    (`shared.aggregate`) are keyed by it. It is counted here rather than derived from the
    runs because a run with a lower id can commit after one with a higher id (the API
    queues a run before the worker reaches it). `changed_at` tells apart two stores that
    reached the same count, such as a database created again from scratch.
    """

    number = peewee.IntegerField()
    changed_at = peewee.DateTimeField()

    class Meta:
        database = database
        table_name = "data_version"


def _add_data_version(migrator: SchemaMigrator) -> None:
    """Version 3: the data version row."""
    DataVersion.create_table(safe=True)


# Schema changes after version 1, in order. Version N+1 is MIGRATIONS[N - 1]: append a
# function that calls `playhouse.migrate.migrate(migrator.add_column(...), ...)`; never
# edit or remove one that has shipped.
def _add_run_source_version(migrator: SchemaMigrator) -> None:
    """Version 4: `run.source_version`, the precise order of source versions.

    Skipped where the column is there already, so that migrating again from an earlier
    version (as the tests of the earlier migrations do) stays safe.
    """
    if "source_version" not in [column.name for column in database.get_columns("run")]:
        migrate(migrator.add_column("run", "source_version", peewee.BigIntegerField(null=True)))


def _drop_user_run_foreign_key(migrator: SchemaMigrator) -> None:
    """Version 5: `app_user.run_id` is no foreign key any more (see `User.run_id`).

    Only PostgreSQL pays for the constraint, so only there is it dropped; SQLite checks it
    with one index lookup per row, too little to justify rebuilding the table.
    """
    if not isinstance(database.obj, peewee.PostgresqlDatabase):
        return
    names = database.execute_sql(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'app_user'::regclass AND contype = 'f'"
    ).fetchall()
    for (name,) in names:
        database.execute_sql(f'ALTER TABLE app_user DROP CONSTRAINT "{name}"')


MIGRATIONS: list[Migration] = [
    _add_run_warnings,
    _add_data_version,
    _add_run_source_version,
    _drop_user_run_foreign_key,
]
# Any fixed number: the PostgreSQL advisory lock that schema changes take, one at a time.
SCHEMA_LOCK_KEY = 7_246_120
# How many times this thread holds the load lock (see load_lock).
_held = threading.local()


# PostgreSQL URLs bind the "ext" database, whose server-side cursors let the API stream a
# million users without the driver downloading the whole result first.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_database(url: str, statement_timeout_seconds: int = 0) -> peewee.Database:
    """Connect to the database named by `url` and bind the models to it.

    On PostgreSQL, a `statement_timeout_seconds` above 0 makes the server cancel any
    statement of these connections that runs longer (the API sets it, so one slow query
    cannot hold a request thread for ever; a load may take longer and does not).
    """
    if url.startswith(POSTGRES_SCHEMES):
        url = "postgresext://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = connect(url, pragmas=SQLITE_PRAGMAS)
        db.register_function(_lower, SQLITE_LOWER, 1, deterministic=True)
    else:
        db = connect(url)
    if statement_timeout_seconds and isinstance(db, peewee.PostgresqlDatabase):
        # Added to the options the URL may already carry (a search_path, say).
        options = db.connect_params.get("options", "")
        timeout = f"-c statement_timeout={statement_timeout_seconds * 1000}"
        db.connect_params["options"] = f"{options} {timeout}".strip()
    database.initialize(db)
    return db


def _lower(text: str | None) -> str | None:
    return None if text is None else text.lower()


def ensure_schema(
    models: Sequence[type[peewee.Model]],
    migrations: Sequence[Migration] = MIGRATIONS,
    unindexed: Sequence[type[peewee.Model]] = (),
) -> int:
    """Create missing tables, then apply the migrations this database has not seen.

    The tables of the `unindexed` models are created without their indexes, which
    something else builds (the users' first load, see `shared.models.build_user_indexes`).

    Safe to call from every process at every start. A current schema is only read: in
    PostgreSQL even `CREATE ... IF NOT EXISTS` locks the tables it names, and a process
    starting during a load would deadlock with it; in SQLite a write would wait for the
    load. Otherwise tables, migrations and the version row change in one transaction,
    which PostgreSQL processes starting together on a new database take in turn.
    """
    target = 1 + len(migrations)
    if _schema_version() == target:
        return target
    with database.atomic():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        indexed = [model for model in models if model not in unindexed]
        database.create_tables([SchemaVersion, DataVersion, *indexed], safe=True)
        for model in unindexed:
            model._schema.create_table(safe=True)
        row = SchemaVersion.select().first()
        if row is None:
            row = SchemaVersion.create(version=target)
            return row.version
        pending = migrations[row.version - 1 :]
        if pending:
            migrator = SchemaMigrator.from_database(database.obj)
            for migration in pending:
                migration(migrator)
            row.version += len(pending)
            row.save()
        return row.version


def _schema_version() -> int | None:
    """The version this database has reached, or None before its schema exists."""
    try:
        row = SchemaVersion.select().first()
    except peewee.DatabaseError:
        return None  # no schema_version table yet
    return row.version if row is not None else None


def data_version() -> str:
    """The version of the users' data, "0" for a store no load has changed yet.

    One row, so every request can afford to read it.
    """
    row = DataVersion.select(DataVersion.number, DataVersion.changed_at).tuples().first()
    if row is None:
        return "0"
    number, changed_at = row
    return f"{number}.{changed_at:%Y%m%d%H%M%S%f}"


def record_data_change() -> None:
    """Count a change to the users; call it inside the transaction that writes them.

    Loads run one at a time (`load_lock`), so the first row is created once.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    if not DataVersion.update(number=DataVersion.number + 1, changed_at=now).execute():
        DataVersion.create(number=1, changed_at=now)


def settle(table: str, columns: Sequence[str]) -> None:
    """Finish a bulk write of `table` for its readers; a load runs this beside its export.

    PostgreSQL: VACUUM (ANALYZE) of the `columns` that queries filter on, so that the
    planner sees the load at once instead of after autovacuum; without fresh statistics
    and visibility map it scans the table rather than the covering index that counts the
    users. Analyzing only those columns is quicker (timed per step in
    docs/BENCHMARKS.md), and an ANALYZE of some columns leaves the table's count of
    changes as it was, so autovacuum still analyzes the rest soon after. SQLite: a
    checkpoint, which copies the write-ahead log into the database file; a load turns the
    automatic one off for its commit (`shared.staging`), where the load would wait for it.
    """
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql(f"VACUUM (ANALYZE) {table} ({', '.join(columns)})")
    else:
        database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")


@contextmanager
def load_lock(table: str) -> Iterator[None]:
    """Hold the store's load lock, waiting for it if another process has it.

    Loads into one store must run one at a time (see the README's "single-writer"): the
    worker's queue ensures that among workers, and this lock extends it to `zipflow
    process` and anything else that loads. PostgreSQL holds it as a session advisory lock
    keyed by the table's oid, so stores in other schemas do not wait for each other;
    SQLite as a lock on a file beside the database. Both go when the process dies. A
    thread that holds it may take it again (the worker decides and loads under one hold).
    """
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    with _acquire(table):
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


@contextmanager
def _acquire(table: str) -> Iterator[None]:
    db = database.obj
    if isinstance(db, peewee.PostgresqlDatabase):
        with _advisory_lock(db, table):
            yield
    elif db.database in ("", ":memory:"):
        yield  # a private in-memory store: no other process can load into it
    else:
        with open(f"{db.database}.load-lock", "a") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _log_waiting(db.database)
                fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield


@contextmanager
def _advisory_lock(db: peewee.PostgresqlDatabase, table: str) -> Iterator[None]:
    key = db.execute_sql("SELECT %s::regclass::oid::bigint", (table,)).fetchone()[0]
    if not db.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        _log_waiting(f"{db.database} ({table})")
        db.execute_sql("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        # If the connection is gone, the lock went with it.
        with suppress(peewee.PeeweeException):
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))


def _log_waiting(store: str) -> None:
    log.warning("another load into %s is running; waiting for it to finish", store)
