"""Loading archives into the store end to end, on SQLite and PostgreSQL."""

import csv
import io
import sqlite3
import threading
import zipfile
import zlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import peewee
import psycopg2
import pytest
from playhouse.migrate import SchemaMigrator, migrate

from shared.config import Settings
from shared.db import (
    MIGRATIONS,
    DataVersion,
    SchemaVersion,
    data_version,
    database,
    ensure_schema,
    load_lock,
    open_database,
    record_data_change,
)
from shared.demo import user_csv
from shared.export import export_csv
from shared.models import FILTERED_COLUMNS, MODELS, Run, User, create_schema, sort_key
from shared.pipeline import (
    ABANDONED_AFTER_COMMIT_NOTE,
    ABANDONED_NOTE,
    Job,
    OutputPathError,
    process,
    record_skipped,
)
from shared.storage import LocalStore
from tests.shared.zips import IVAN, PNG, make_zip, users_zip


@pytest.fixture
def env(store_db, tmp_path) -> tuple[Settings, LocalStore]:
    settings = replace(Settings(), data_dir=tmp_path / "data")
    return settings, LocalStore(settings.data_dir, settings.processed_bucket)


def load(path: Path, env, mode: str = "snapshot", modified: datetime | None = None, **job) -> Run:
    settings, store = env
    return process(
        Job(path, str(path), modified=modified, **job), replace(settings, mode=mode), store
    )


def users() -> dict[str, tuple]:
    return {u.user_id: (u.first_name, u.img_path) for u in User.select()}


def test_a_snapshot_loads_users_images_and_output_csv(env, tmp_path):
    settings, _ = env
    run = load(users_zip(tmp_path / "a.zip", ["1000", "1001"], images=("1000",)), env)
    assert run.status == "succeeded"
    assert (run.users_in_archive, run.inserted, run.images, run.images_uploaded) == (2, 2, 1, 1)
    assert users() == {
        "1000": ("First1000", "processed/images/1000.png"),
        "1001": ("First1001", None),
    }
    assert (settings.data_dir / "processed/images/1000.png").read_bytes() == PNG
    output = (settings.data_dir / "processed/output.csv").read_text()
    assert output.splitlines() == [
        "user_id,first_name,last_name,birthts,img_path",
        "1000,First1000,Last1000,946684800000,processed/images/1000.png",
        "1001,First1001,Last1001,946684800000,",
    ]


def test_a_user_row_carries_birthdate_run_and_timestamps(env, tmp_path):
    run = load(
        make_zip(tmp_path / "a.zip", {"7.csv": b"first_name,last_name,birthts\nA,B,-1\n"}), env
    )
    user = User.get(User.user_id == "7")
    assert str(user.birthdate) == "1969-12-31"
    assert user.birth_ymd == 19691231
    assert user.run_id == run.id
    assert user.created_at is not None and user.updated_at is not None


def test_a_second_snapshot_updates_inserts_and_deletes(env, tmp_path):
    settings, _ = env
    load(users_zip(tmp_path / "a.zip", ["1", "2", "3"], images=("1", "3")), env)
    second = make_zip(
        tmp_path / "b.zip",
        {
            "1.csv": b"first_name,last_name,birthts\nNew,Name,1\n",
            "2.csv": IVAN,
            "4.csv": IVAN,
            "2.png": PNG,
        },
    )
    run = load(second, env)
    assert (run.inserted, run.updated, run.deleted, run.unchanged) == (1, 2, 1, 0)
    assert users() == {
        "1": ("New", None),
        "2": ("Ivan", "processed/images/2.png"),
        "4": ("Ivan", None),
    }
    images = settings.data_dir / "processed/images"
    assert sorted(p.name for p in images.iterdir()) == ["2.png"]
    assert run.images_deleted == 2


def test_loading_the_same_archive_again_changes_nothing_and_uploads_nothing(env, tmp_path):
    path = users_zip(tmp_path / "a.zip", ["1", "2"], images=("1",))
    load(path, env)
    again = load(path, env)
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 2)
    assert again.images_uploaded == 0
    assert User.select().count() == 2


def test_a_changed_image_is_uploaded_again(env, tmp_path):
    settings, _ = env
    load(make_zip(tmp_path / "a.zip", {"1.csv": IVAN, "1.png": PNG}), env)
    run = load(make_zip(tmp_path / "b.zip", {"1.csv": IVAN, "1.png": PNG + b"changed"}), env)
    assert (run.updated, run.images_uploaded) == (1, 1)
    assert (settings.data_dir / "processed/images/1.png").read_bytes() == PNG + b"changed"


def test_merge_adds_and_updates_but_removes_nobody(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1", "2"], images=("1",)), env, mode="merge")
    run = load(make_zip(tmp_path / "b.zip", {"2.csv": IVAN, "3.csv": IVAN}), env, mode="merge")
    assert (run.inserted, run.updated, run.deleted) == (1, 1, 0)
    assert users() == {
        "1": ("First1", "processed/images/1.png"),
        "2": ("Ivan", None),
        "3": ("Ivan", None),
    }


def test_merge_keeps_a_users_image_when_the_new_archive_has_none_for_them(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1"], images=("1",)), env, mode="merge")
    load(make_zip(tmp_path / "b.zip", {"1.csv": IVAN}), env, mode="merge")
    assert users() == {"1": ("Ivan", "processed/images/1.png")}


def test_merge_never_overwrites_a_row_from_a_newer_archive(env, tmp_path):
    newer, older = datetime(2026, 5, 2), datetime(2026, 5, 1)
    load(users_zip(tmp_path / "new.zip", ["1"]), env, mode="merge", modified=newer)
    run = load(
        make_zip(tmp_path / "old.zip", {"1.csv": IVAN, "2.csv": IVAN}),
        env,
        mode="merge",
        modified=older,
    )
    assert (run.inserted, run.updated, run.kept_newer) == (1, 0, 1)
    assert users()["1"] == ("First1", None)


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({}, "no user files"),
        ({"d/": b"", "__MACOSX/._1.csv": b"x"}, "no user files"),
        (
            {"1.csv": b"first_name,last_name\nA,B\n"},
            "no valid user in the archive: 1 files rejected",
        ),
        ({"1.png": PNG}, "no valid user"),
    ],
)
def test_an_archive_with_no_valid_user_fails_and_never_wipes_the_store(
    env, tmp_path, members, error
):
    load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    run = load(make_zip(tmp_path / "b.zip", members), env)
    assert run.status == "failed"
    assert error in run.error
    assert set(users()) == {"1", "2"}


def test_a_corrupt_file_fails_its_run_with_a_clear_message_and_changes_nothing(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1"]), env)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"GIF89a not a zip at all")
    run = load(broken, env)
    assert (run.status, run.finished_at is not None) == ("failed", True)
    assert "not a zip archive" in run.error
    assert set(users()) == {"1"}


def test_a_damaged_image_fails_the_run_before_any_stored_image_is_replaced(env, tmp_path):
    settings, _ = env
    first_image, second_image = PNG + b"first", PNG + b"second"
    load(make_zip(tmp_path / "a.zip", {"d/1.csv": IVAN, "d/1.png": first_image}), env)
    members = {
        "d/1.csv": user_csv("Ivan", "Changed", 946674000000),
        "d/1.png": second_image,
        "d/2.csv": IVAN,
        "d/2.png": PNG + b"damaged",
    }
    data = bytearray(make_zip(tmp_path / "b.zip", members, zipfile.ZIP_STORED).read_bytes())
    at = data.index(b"damaged")
    data[at : at + 7] = b"DAMAGED"
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))

    # One upload thread: 1.png, good, would be written before 2.png is found damaged.
    run = process(Job(damaged, "damaged.zip"), replace(settings, image_upload_threads=1), env[1])
    assert run.status == "failed"
    assert "d/2.png" in run.error and "CRC-32" in run.error
    assert (settings.data_dir / "processed/images/1.png").read_bytes() == first_image
    assert not (settings.data_dir / "processed/images/2.png").exists()


def test_a_snapshot_keeps_the_image_of_a_user_whose_png_is_rejected(env, tmp_path):
    settings, _ = env
    load(make_zip(tmp_path / "a.zip", {"a/1.csv": IVAN, "a/1.png": PNG}), env)
    run = load(make_zip(tmp_path / "b.zip", {"a/1.csv": IVAN, "a/1.png": PNG, "b/1.png": PNG}), env)
    assert run.status == "succeeded"
    assert {r["member"] for r in run.rejections} == {"a/1.png", "b/1.png"}
    assert users() == {"1": ("Ivan", "processed/images/1.png")}
    assert (settings.data_dir / "processed/images/1.png").read_bytes() == PNG
    assert run.images_deleted == 0


class FailingStore(LocalStore):
    """A processed bucket that goes away after `fail_after` writes."""

    def __init__(self, root: Path, bucket: str, fail_after: int) -> None:
        super().__init__(root, bucket)
        self.writes = 0
        self.fail_after = fail_after

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        self.writes += 1
        if self.writes > self.fail_after:
            raise ConnectionError("object store unreachable")
        super().put(key, data, content_type, version)


class Stopped(BaseException):
    """The process ending where it stands, as a kill would (no handler catches it)."""


def test_a_run_whose_process_stopped_after_the_commit_says_its_data_is_stored(
    env, tmp_path, monkeypatch
):
    settings, _ = env
    archive = users_zip(tmp_path / "a.zip", ["1", "2"])

    def stop(*args: object) -> None:
        raise Stopped

    monkeypatch.setattr("shared.pipeline._after_commit", stop)
    with pytest.raises(Stopped):
        load(archive, env)
    monkeypatch.undo()
    assert set(users()) == {"1", "2"}
    assert not (settings.data_dir / "processed/output.csv").exists()

    again = load(archive, env)  # the redelivered message
    assert (again.status, again.inserted, again.unchanged) == ("succeeded", 0, 2)
    assert (settings.data_dir / "processed/output.csv").read_text().count("\n") == 3
    stopped = Run.get_by_id(again.id - 1)
    assert (stopped.status, stopped.inserted) == ("abandoned", 2)
    assert stopped.note == ABANDONED_AFTER_COMMIT_NOTE


def test_a_run_whose_process_stopped_before_the_commit_says_it_changed_nothing(
    env, tmp_path, monkeypatch
):
    def stop(*args: object) -> None:
        raise Stopped

    monkeypatch.setattr("shared.pipeline._upload_images", stop)
    with pytest.raises(Stopped):
        load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    monkeypatch.undo()
    assert users() == {}
    again = load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    assert again.inserted == 2
    stopped = Run.get_by_id(again.id - 1)
    assert (stopped.status, stopped.note) == ("abandoned", ABANDONED_NOTE)


def test_storage_trouble_during_a_load_rolls_back_and_is_raised_for_a_retry(env, tmp_path):
    settings, _ = env
    load(users_zip(tmp_path / "a.zip", ["1"]), env)
    store = FailingStore(settings.data_dir, settings.processed_bucket, fail_after=1)
    job = Job(users_zip(tmp_path / "b.zip", ["5", "6", "7"], images=("5", "6", "7")), "b.zip")
    with pytest.raises(ConnectionError):
        process(job, replace(settings, image_upload_threads=1), store)
    assert set(users()) == {"1"}
    failed = Run.select().order_by(Run.id.desc()).first()
    assert failed.status == "failed" and "object store unreachable" in failed.error


def test_rejections_are_kept_with_the_run(env, tmp_path):
    run = load(
        make_zip(tmp_path / "a.zip", {"1.csv": IVAN, "2.csv": b"first_name\nx\n", "3.png": PNG}),
        env,
    )
    stored = Run.get_by_id(run.id)
    assert stored.rejected == 2
    assert {r["member"]: r["reason"] for r in stored.rejections} == {
        "2.csv": "missing column(s): last_name, birthts",
        "3.png": "image without a csv file",
    }


def test_output_csv_orders_numeric_ids_numerically_then_the_others(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["b", "10", "9", "a", "100", "007"]), env)
    export_csv(tmp_path / "output.csv")
    rows = list(csv.reader(io.StringIO((tmp_path / "output.csv").read_text())))
    assert [row[0] for row in rows[1:]] == ["007", "9", "10", "100", "a", "b"]
    assert sort_key("9") < sort_key("10") < sort_key("a")


def test_output_csv_is_what_pythons_csv_writer_writes_on_every_store(env, tmp_path):
    """PostgreSQL writes output.csv itself (COPY); its quoting must be the csv module's."""
    names = {
        "1": b'"O""Brien, Jr",Zo\xc3\xab,0\n',
        "2": b'A  B,"x,y",1\n',
        "3": b"\\.,'quoted',2\n",
    }
    members = {
        f"{user_id}.csv": b"first_name,last_name,birthts\n" + row for user_id, row in names.items()
    }
    load(make_zip(tmp_path / "a.zip", {**members, "2.png": PNG}), env)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(["user_id", "first_name", "last_name", "birthts", "img_path"])
    writer.writerows(
        [
            ["1", 'O"Brien, Jr', "Zoë", 0, ""],
            ["2", "A  B", "x,y", 1, "processed/images/2.png"],
            ["3", "\\.", "'quoted'", 2, ""],
        ]
    )
    export_csv(tmp_path / "output.csv")
    assert (tmp_path / "output.csv").read_text(encoding="utf-8") == expected.getvalue()


def test_sort_keys_compare_byte_by_byte_on_postgresql_whatever_its_locale(store_db, database_url):
    """Under a locale such as en_US, PostgreSQL would put the padded numeric keys last.

    The test database's own default is C, which hides that, so the column itself is checked.
    """
    if not database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only: SQLite always compares text byte by byte")
    (collation,) = database.execute_sql(
        "SELECT collation_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
        (User._meta.table_name, User.sort_key.column_name),
    ).fetchone()
    assert collation == "C"


def test_a_reader_sees_the_old_dataset_or_the_new_one_never_a_mix(env, tmp_path):
    settings, store = env
    load(users_zip(tmp_path / "a.zip", [str(i) for i in range(0, 3000)]), env)
    new = users_zip(tmp_path / "b.zip", [str(i) for i in range(3000, 6000)])
    counts: list[int] = []
    done = threading.Event()

    def read_while_loading() -> None:
        while not done.is_set():
            counts.append(User.select().where(User.user_id.in_(["0", "3000"])).count())
        database.close()

    reader = threading.Thread(target=read_while_loading)
    reader.start()
    try:
        process(Job(new, "b.zip"), settings, store)
    finally:
        done.set()
        reader.join()
    assert counts and set(counts) == {1}


def test_a_load_waits_while_another_holds_the_stores_load_lock(env, tmp_path, caplog):
    """`zipflow process` and a worker on one store: the second load waits for the first."""
    settings, store = env
    archive = users_zip(tmp_path / "a.zip", ["1", "2"])
    runs: list[Run] = []

    def load_elsewhere() -> None:
        runs.append(process(Job(archive, "a.zip"), settings, store))
        database.close()

    with load_lock(User._meta.table_name):
        loader = threading.Thread(target=load_elsewhere)
        loader.start()
        loader.join(timeout=1.0)
        assert loader.is_alive(), "the load ran while the lock was held"
        assert Run.select().count() == 0
    loader.join(timeout=30)
    assert [run.status for run in runs] == ["succeeded"]
    assert sorted(users()) == ["1", "2"]
    assert "another load into" in caplog.text


def test_record_skipped_keeps_the_reason(env):
    run = record_skipped("source/a.zip", "abc", None, "event", "already processed")
    assert (run.status, run.note, run.etag) == ("skipped", "already processed", "abc")


def test_schema_creation_is_idempotent_and_applies_new_migrations_once(store_db):
    applied: list[int] = []

    def add_nickname(migrator) -> None:
        applied.append(1)
        migrate(migrator.add_column("app_user", "nickname", peewee.TextField(null=True)))

    assert ensure_schema(MODELS) == 1 + len(MIGRATIONS)
    assert ensure_schema(MODELS, [*MIGRATIONS, add_nickname]) == 2 + len(MIGRATIONS)
    assert ensure_schema(MODELS, [*MIGRATIONS, add_nickname]) == 2 + len(MIGRATIONS)
    assert applied == [1]
    assert "nickname" in [c.name for c in store_db.get_columns("app_user")]
    assert SchemaVersion.select().count() == 1


def test_a_version_3_store_gains_the_runs_source_version(store_db):
    from playhouse.migrate import SchemaMigrator, migrate

    migrate(SchemaMigrator.from_database(store_db).drop_column("run", "source_version"))
    SchemaVersion.update(version=3).execute()
    assert ensure_schema(MODELS) == 1 + len(MIGRATIONS)
    assert "source_version" in [c.name for c in store_db.get_columns("run")]


def test_a_process_starting_while_a_load_writes_to_sqlite_does_not_fail(tmp_path):
    """Every process calls ensure_schema at start; on a current schema it must not write."""
    path = tmp_path / "zipflow.db"
    open_database(f"sqlite:///{path}")
    create_schema()
    database.close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as a load does while it writes its rows
    writer.execute("UPDATE run SET note = 'busy'")
    try:
        open_database(f"sqlite:///{path}")
        assert create_schema() == 1 + len(MIGRATIONS)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        database.close()


@pytest.mark.postgres
def test_a_process_starting_while_a_load_writes_to_postgresql_does_not_wait_for_it(
    store_db, database_url
):
    """Creating existing tables and indexes again would lock them behind the load's writes
    (and deadlock when the load then updates its run)."""
    if not database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only")
    load_connection = psycopg2.connect(database_url)
    with load_connection.cursor() as cursor:  # a load in the middle of its transaction
        cursor.execute("UPDATE app_user SET first_name = first_name")
        cursor.execute("UPDATE run SET note = note")
    versions: list[int] = []

    def start_a_process() -> None:
        versions.append(create_schema())
        database.close()

    starting = threading.Thread(target=start_a_process)
    starting.start()
    starting.join(timeout=10)
    still_waiting = starting.is_alive()
    load_connection.rollback()
    load_connection.close()
    starting.join()
    assert not still_waiting, "ensure_schema waited for the load's locks"
    assert versions == [1 + len(MIGRATIONS)]


def test_processes_starting_together_on_a_new_database_all_get_the_schema(database_url):
    open_database(database_url)
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def start_a_process() -> None:
        barrier.wait()
        try:
            outcomes.append(create_schema())
        except peewee.PeeweeException as error:
            outcomes.append(error)
        finally:
            database.close()

    starters = [threading.Thread(target=start_a_process) for _ in range(4)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(timeout=30)
    assert outcomes == [1 + len(MIGRATIONS)] * 4
    assert SchemaVersion.select().count() == 1


def test_a_reload_reads_only_the_user_files_that_changed(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1", "2", "3"], images=("1",)), env)
    changed_csv = b"first_name,last_name,birthts\nChanged,Name,5\n"
    members = {
        "data/1.csv": user_csv("First1", "Last1", 946684800000),
        "data/2.csv": changed_csv,
        "data/3.csv": user_csv("First3", "Last3", 946684800000),
        "data/1.png": PNG,
        "data/3.png": PNG,
    }
    run = load(make_zip(tmp_path / "b.zip", members), env)
    assert (run.users_in_archive, run.updated, run.unchanged, run.images_uploaded) == (3, 2, 1, 1)
    assert users() == {
        "1": ("First1", "processed/images/1.png"),
        "2": ("Changed", None),
        "3": ("First3", "processed/images/3.png"),
    }
    stored = User.get(User.user_id == "2")
    assert stored.birthts == 5
    assert stored.csv_fingerprint == f"{zlib.crc32(changed_csv):08x}-{len(changed_csv)}"


def test_a_snapshot_keeps_a_user_whose_file_is_present_but_rejected(env, tmp_path):
    load(users_zip(tmp_path / "a.zip", ["1", "2", "3"], images=("2",)), env)
    members = {
        "d/1.csv": IVAN,
        "d/2.csv": b"first_name,last_name,birthts\nBroken,,x\n",
        "d/2.png": PNG,
    }
    run = load(make_zip(tmp_path / "b.zip", members), env)
    assert (run.status, run.deleted, run.rejected) == ("succeeded", 1, 1)
    assert users() == {"1": ("Ivan", None), "2": ("First2", "processed/images/2.png")}


class StoreFailingAfterTheCommit(LocalStore):
    """A processed bucket that takes images but fails the steps after the commit."""

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        if key == "output.csv":
            raise ConnectionError("object store unreachable")
        super().put(key, data, content_type, version)

    def delete_many(self, keys) -> None:
        raise ConnectionError("object store unreachable")


def test_a_step_failing_after_the_commit_leaves_the_run_succeeded_with_a_warning(env, tmp_path):
    settings, _ = env
    load(users_zip(tmp_path / "a.zip", ["1", "2"], images=("1", "2")), env)
    store = StoreFailingAfterTheCommit(settings.data_dir, settings.processed_bucket)
    job = Job(users_zip(tmp_path / "b.zip", ["2", "3"], images=("3",)), "b.zip")

    run = process(job, settings, store)

    assert run.status == "succeeded" and run.error is None
    assert set(users()) == {"2", "3"}
    stored = Run.get_by_id(run.id)
    assert stored.status == "succeeded"
    assert [warning.split(":")[0] for warning in stored.warnings] == [
        f"deleting 2 old images from {store.label} failed",
        f"writing output.csv to {store.label} failed",
    ]
    assert "object store unreachable" in stored.warnings[1]


def test_a_csv_out_that_cannot_take_the_bytes_is_a_warning_not_a_failure(env, tmp_path):
    run = process(
        Job(users_zip(tmp_path / "a.zip", ["1"]), "a.zip"), *env, csv_out=Path("/dev/full")
    )
    assert (run.status, set(users())) == ("succeeded", {"1"})
    assert run.warnings == ["writing /dev/full failed: OSError: [Errno 28] No space left on device"]


def test_a_clean_run_has_no_warnings(env, tmp_path):
    assert load(users_zip(tmp_path / "a.zip", ["1"]), env).warnings == []


@pytest.mark.parametrize(
    ("csv_out", "message"),
    [
        ("out", r"out is a directory; name a file, such as .*out/output.csv"),
        ("missing/out.csv", r"the folder .*missing does not exist"),
        ("b.zip", r"b.zip is the archive being loaded; name another file"),
    ],
)
def test_an_unusable_csv_out_is_refused_before_anything_changes(env, tmp_path, csv_out, message):
    load(users_zip(tmp_path / "a.zip", ["1"]), env)
    (tmp_path / "out").mkdir()
    archive = users_zip(tmp_path / "b.zip", ["2"])
    content = archive.read_bytes()
    with pytest.raises(OutputPathError, match=message):
        process(Job(archive, "b.zip"), *env, csv_out=tmp_path / csv_out)
    assert set(users()) == {"1"} and Run.select().count() == 1
    assert archive.read_bytes() == content
    assert not (tmp_path / "missing").exists()


def test_a_version_4_store_loses_the_users_run_foreign_key(store_db, env, tmp_path):
    """PostgreSQL checked the constraint with a trigger per row; the load now writes run_id
    for its own run, unchecked, on every store."""
    postgres = isinstance(store_db, peewee.PostgresqlDatabase)
    if postgres:
        store_db.execute_sql(
            "ALTER TABLE app_user ADD CONSTRAINT app_user_run_id_fkey FOREIGN KEY (run_id)"
            " REFERENCES run (id) ON DELETE SET NULL"
        )
        assert store_db.get_foreign_keys("app_user") != []
    SchemaVersion.update(version=4).execute()
    assert create_schema() == 1 + len(MIGRATIONS)
    if postgres:
        assert store_db.get_foreign_keys("app_user") == []
    run = load(users_zip(tmp_path / "a.zip", ["1"]), env)
    assert User.get(User.user_id == "1").run_id == run.id


def test_a_version_1_store_gains_the_runs_warnings(store_db):
    migrator = SchemaMigrator.from_database(store_db)
    migrate(migrator.drop_column("run", "warnings_json"))
    SchemaVersion.update(version=1).execute()
    assert create_schema() == 1 + len(MIGRATIONS)
    assert "warnings_json" in [c.name for c in store_db.get_columns("run")]
    assert Run.create(source="x").warnings == []


def test_a_version_2_store_gains_the_data_version(store_db):
    DataVersion.drop_table()
    SchemaVersion.update(version=2).execute()
    assert create_schema() == 1 + len(MIGRATIONS)
    assert data_version() == "0"
    with database.atomic():
        record_data_change()
    assert data_version().startswith("1.")


def test_a_png_that_is_no_image_is_rejected_and_the_stored_image_kept(env, tmp_path):
    settings, _ = env
    load(make_zip(tmp_path / "a.zip", {"d/1.csv": IVAN, "d/1.png": PNG}), env)
    run = load(make_zip(tmp_path / "b.zip", {"d/1.csv": IVAN, "d/1.png": b"GIF89a..."}), env)
    assert run.status == "succeeded"
    assert run.rejections == [
        {
            "member": "d/1.png",
            "user_id": "1",
            "reason": "not a PNG image: the file does not start with the PNG signature",
        }
    ]
    assert users() == {"1": ("Ivan", "processed/images/1.png")}
    assert (settings.data_dir / "processed/images/1.png").read_bytes() == PNG


@pytest.mark.postgres
def test_postgresql_statistics_are_refreshed_after_a_load_and_a_failure_is_a_warning(
    env, database_url, tmp_path, monkeypatch
):
    """VACUUM (ANALYZE) runs on a connection of its own while output.csv is written."""
    if not database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only")

    def analyzed() -> bool:
        row = database.execute_sql(
            "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
            " FROM pg_stat_user_tables WHERE relid = 'app_user'::regclass"
        ).fetchone()
        return bool(row[0])

    assert not analyzed()
    run = load(users_zip(tmp_path / "a.zip", ["1", "2"]), env)
    assert run.warnings == [] and analyzed()
    with_statistics = database.execute_sql(
        "SELECT attname FROM pg_stats WHERE schemaname = current_schema()"
        " AND tablename = 'app_user' ORDER BY attname"
    ).fetchall()
    assert [name for (name,) in with_statistics] == sorted(FILTERED_COLUMNS)

    def refused(table: str, columns) -> None:
        raise peewee.OperationalError("canceling statement due to statement timeout")

    monkeypatch.setattr("shared.pipeline.settle", refused)
    run = load(users_zip(tmp_path / "b.zip", ["1", "3"]), env)
    assert run.status == "succeeded" and (run.inserted, run.deleted) == (1, 1)
    assert run.warnings == [
        "settling the store for its readers failed: OperationalError:"
        " canceling statement due to statement timeout"
    ]


def test_an_unchanged_reload_keeps_output_csv_and_any_other_reload_writes_it(env, tmp_path):
    """output.csv carries the data version it was written from: a load that changed
    nothing leaves it, and one whose output.csv went missing or was replaced writes it."""
    settings, store = env
    output = settings.data_dir / "processed/output.csv"
    archive = users_zip(tmp_path / "a.zip", ["1", "2"])
    load(archive, env)
    assert store.version_of("output.csv") == data_version()
    written = output.stat().st_mtime_ns
    assert load(archive, env).unchanged == 2
    assert output.stat().st_mtime_ns == written, "an unchanged reload rewrote output.csv"

    output.unlink()
    load(archive, env)
    assert output.read_text().splitlines()[1:] == [
        "1,First1,Last1,946684800000,",
        "2,First2,Last2,946684800000,",
    ]
    output.write_text("edited by hand\n")
    assert store.version_of("output.csv") is None
    load(archive, env)
    assert output.read_text().startswith("user_id,first_name")

    changed = load(users_zip(tmp_path / "b.zip", ["1", "3"]), env)
    assert (changed.inserted, changed.deleted) == (1, 1)
    assert [line.split(",")[0] for line in output.read_text().splitlines()] == [
        "user_id",
        "1",
        "3",
    ]
    assert store.version_of("output.csv") == data_version()


def test_an_unchanged_reload_still_writes_the_csv_out_it_is_asked_for(env, tmp_path):
    archive = users_zip(tmp_path / "a.zip", ["1"])
    load(archive, env)
    settings, store = env
    csv_out = tmp_path / "copy.csv"
    process(Job(archive, "a.zip"), settings, store, csv_out=csv_out)
    assert csv_out.read_text().splitlines()[1] == "1,First1,Last1,946684800000,"


def test_a_store_that_cannot_say_output_csvs_version_gets_it_written_again(env, tmp_path):
    settings, _ = env

    class Unsure(LocalStore):
        def version_of(self, key: str) -> str | None:
            raise ConnectionError("object store unreachable")

    archive = users_zip(tmp_path / "a.zip", ["1"])
    load(archive, env)
    output = settings.data_dir / "processed/output.csv"
    output.unlink()
    unsure = Unsure(settings.data_dir, settings.processed_bucket)
    run = process(Job(archive, "a.zip"), settings, unsure)
    assert (run.status, run.warnings) == ("succeeded", [])
    assert output.read_text().splitlines()[1] == "1,First1,Last1,946684800000,"


def test_sqlite_copies_a_load_into_the_database_file_after_its_commit(env, tmp_path, store_db):
    """The load's commit skips SQLite's automatic checkpoint; the load runs it after, so
    the database file alone, without its write-ahead log, holds the new users."""
    if isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("SQLite only")
    load(users_zip(tmp_path / "a.zip", [str(n) for n in range(1, 301)]), env)
    copy = tmp_path / "alone.db"
    copy.write_bytes(Path(store_db.database).read_bytes())
    alone = sqlite3.connect(copy)
    try:
        assert alone.execute("SELECT count(*) FROM app_user").fetchone()[0] == 300
    finally:
        alone.close()


def test_a_data_version_unreadable_after_the_commit_is_a_warning_and_output_csv_is_written(
    env, tmp_path, monkeypatch
):
    settings, store = env
    archive = users_zip(tmp_path / "a.zip", ["1"])
    load(archive, env)

    def unreadable() -> str:
        raise peewee.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("shared.pipeline.data_version", unreadable)
    output = settings.data_dir / "processed/output.csv"
    output.unlink()
    run = load(archive, env)
    assert run.status == "succeeded"
    assert run.warnings == [
        "reading the data version failed: OperationalError:"
        " server closed the connection unexpectedly"
    ]
    assert output.read_text().splitlines()[1] == "1,First1,Last1,946684800000,"
    assert store.version_of("output.csv") is None, "written without a version, it claims none"
