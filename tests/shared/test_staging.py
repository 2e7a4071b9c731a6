"""Staging a load in the store and merging it with SQL, on SQLite and PostgreSQL."""

import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import peewee
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.archive import now_ms, open_archive
from shared.config import ArchiveLimits, Settings
from shared.db import database
from shared.models import Run, User, build_user_indexes
from shared.pipeline import Job, process
from shared.staging import (
    STAGE,
    USERS,
    Changes,
    Staging,
    csv_text,
    staged_rows,
    valid_users_csv,
)
from shared.storage import LocalStore
from tests.shared.zips import IVAN, PNG, make_zip, users_zip


def staged(path: Path, chunk: int):
    """The archive staged a few members at a time, and what the cross-member rules found."""
    with open_archive(path, ArchiveLimits()) as archive, Staging() as staging:
        for part in archive.scan(now_ms(), staging.known, chunk=chunk):
            staging.add(staged_rows(part, Settings().image_path, staging.as_csv))
        return staging.resolve()


def test_a_user_id_in_two_folders_rejects_both_files_even_in_different_chunks(store_db, tmp_path):
    path = make_zip(
        tmp_path / "a.zip",
        {"a/5.csv": IVAN, "a/6.csv": IVAN, "a/7.csv": IVAN, "b/5.csv": IVAN, "b/5.png": PNG},
    )
    found = staged(path, chunk=2)
    assert found.users == 2
    reasons = {r.member: r.reason for r in found.rejections}
    assert reasons == {
        "a/5.csv": "user id 5 has 2 csv files (a/5.csv, b/5.csv)",
        "b/5.csv": "user id 5 has 2 csv files (a/5.csv, b/5.csv)",
    }
    assert found.images == 0, "the png of a rejected user is not loaded"


def test_images_count_only_for_loaded_users_and_one_without_a_csv_is_reported(store_db, tmp_path):
    path = make_zip(
        tmp_path / "a.zip",
        {"d/1.csv": IVAN, "d/1.png": PNG, "d/2.png": PNG, "d/3.csv": b"broken", "d/3.png": PNG},
    )
    found = staged(path, chunk=1)
    assert (found.users, found.images) == (1, 1)
    assert [(r.member, r.reason) for r in found.rejections] == [
        ("d/3.csv", "missing column(s): first_name, last_name, birthts"),
        ("d/2.png", "image without a csv file"),
    ]


def test_the_staging_tables_are_gone_after_a_load_and_after_a_failed_one(store_db, tmp_path):
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    bad = make_zip(tmp_path / "bad.zip", {"1.csv": b"broken"})
    good = users_zip(tmp_path / "good.zip", ["1", "2"])
    assert process(Job(bad, "bad.zip"), settings, store).status == "failed"
    assert process(Job(good, "good.zip"), settings, store).status == "succeeded"
    with pytest.raises(Exception, match=USERS):
        database.execute_sql(f"SELECT count(*) FROM {USERS}")  # noqa: S608


def test_awkward_names_and_text_reach_the_store_unchanged(store_db, tmp_path):
    """Commas, quotes, backslashes, tabs and line breaks in member names, and quotes,
    commas and backslashes in user names, survive COPY's CSV as they do executemany."""
    first, last = 'Zoë "Z" \\ O\'Neil', "Smith, Jr."
    data = f'first_name,last_name,birthts\n"{first.replace(chr(34), 2 * chr(34))}","{last}",1\n'
    members = {
        'we,ird "folder"\\\t\r\n/1.csv': data.encode(),
        "plain/2.csv": b"first_name,last_name,birthts\n,B,1\n",
    }
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    run = process(Job(make_zip(tmp_path / "a.zip", members), "a.zip"), settings, store)
    assert run.status == "succeeded", run.error
    assert [(u.first_name, u.last_name) for u in User.select()] == [(first, last)]
    stored = Run.get_by_id(run.id)
    assert stored.rejections == [
        {"member": "plain/2.csv", "user_id": "2", "reason": "first_name is empty"}
    ]


def test_a_snapshot_deletes_absent_users_and_their_images_set_wise(store_db, tmp_path):
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    first = users_zip(tmp_path / "a.zip", [str(i) for i in range(20)], images=("3", "4"))
    assert process(Job(first, "a.zip"), settings, store).inserted == 20
    second = users_zip(tmp_path / "b.zip", [str(i) for i in range(5)], images=("4",))
    run = process(Job(second, "b.zip"), settings, store)
    assert (run.deleted, run.unchanged, run.updated, run.images_deleted) == (15, 4, 1, 1)
    assert sorted(int(u.user_id) for u in User.select()) == list(range(5))
    assert not (settings.data_dir / "processed/images/3.png").exists()
    assert (settings.data_dir / "processed/images/4.png").exists()


def test_a_load_gives_its_connection_back_with_sqlites_settings_as_they_were(store_db, tmp_path):
    """The load's larger page caches and its commit without a checkpoint end with it,
    whether it succeeded or failed."""
    if isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("SQLite only: PostgreSQL RESETs its settings, tested with the load")
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)

    def current() -> dict[str, object]:
        names = ("cache_size", "temp.cache_size", "wal_autocheckpoint")
        settings = {name: database.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in names}
        return {**settings, "databases": attached()}

    before = current()
    assert before["wal_autocheckpoint"] > 0
    good = users_zip(tmp_path / "good.zip", ["1", "2"])
    assert process(Job(good, "good.zip"), settings, store).status == "succeeded"
    assert current() == before
    bad = make_zip(tmp_path / "bad.zip", {"1.csv": b"broken"})
    assert process(Job(bad, "bad.zip"), settings, store).status == "failed"
    assert current() == before


def attached() -> list[str]:
    return [row[1] for row in database.execute_sql("PRAGMA database_list").fetchall()]


def test_a_staging_database_left_attached_is_replaced_by_the_next_load(store_db, tmp_path):
    """A load whose clean-up failed leaves its staging database on the connection; the
    next load detaches it before staging, so no stale row joins the new ones."""
    if isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("SQLite only: PostgreSQL's staging tables are temporary tables")
    database.execute_sql(f"ATTACH DATABASE '' AS {STAGE}")
    database.execute_sql(f"CREATE TABLE {STAGE}.{USERS} (user_id TEXT)")
    database.execute_sql(f"INSERT INTO {USERS} VALUES ('stale')")  # noqa: S608
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    run = process(Job(users_zip(tmp_path / "a.zip", ["1", "2"]), "a.zip"), settings, store)
    assert (run.status, run.inserted) == ("succeeded", 2)
    assert sorted(u.user_id for u in User.select()) == ["1", "2"]
    assert STAGE not in attached()


def test_a_committed_load_is_a_success_even_if_its_staging_tables_cannot_be_dropped(
    store_db, tmp_path, monkeypatch, caplog
):
    """The run history must not call a committed load failed; the next load cleans up."""
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    drop = Staging._drop
    drops = []

    def drop_fails_after_the_commit(staging: Staging) -> None:
        drops.append(staging)
        if len(drops) == 2:  # the first clears leftovers, the second ends the load
            raise peewee.OperationalError("database is locked")
        drop(staging)

    monkeypatch.setattr(Staging, "_drop", drop_fails_after_the_commit)
    run = process(Job(users_zip(tmp_path / "a.zip", ["1", "2"]), "a.zip"), settings, store)
    assert len(drops) == 2
    assert (run.status, run.inserted) == ("succeeded", 2)
    assert Run.get_by_id(run.id).status == "succeeded"
    assert "could not drop the staging tables: database is locked" in caplog.text
    monkeypatch.undo()
    again = process(Job(users_zip(tmp_path / "b.zip", ["1", "3"]), "b.zip"), settings, store)
    assert (again.status, again.inserted, again.deleted) == ("succeeded", 1, 1)


def test_a_load_that_fails_at_its_last_read_has_changed_nothing(store_db, tmp_path, monkeypatch):
    """The run says failed only if the store says so too: the list of images to delete
    is the last thing the load reads, and it is read before the commit."""
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    first = users_zip(tmp_path / "a.zip", ["1", "2"], images=("1", "2"))
    assert process(Job(first, "a.zip"), settings, store).inserted == 2

    def unreadable(staging: Staging) -> Iterator[str]:
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(Staging, "images_to_delete", unreadable)
    second = users_zip(tmp_path / "b.zip", ["1"], images=("1",))
    with pytest.raises(peewee.OperationalError):
        process(Job(second, "b.zip"), settings, store)
    last = Run.select().order_by(Run.id.desc()).get()
    assert (last.status, last.error) == ("failed", "OperationalError: disk I/O error")
    assert sorted(u.user_id for u in User.select()) == ["1", "2"]
    # The counts of the rolled-back merge were never true of the store.
    assert set(last.counts().values()) == {0} and last.rejections == []


MIXED = {
    "a/1.csv": IVAN,
    "a/1.png": PNG,
    "a/2.csv": IVAN,
    "a/3.csv": b"broken",
    "a/3.png": PNG,
    "a/4.png": PNG,
    "a/5.csv": IVAN,
    "a/5.png": b"not a png",
    "a/6.csv": IVAN,
    "b/6.csv": IVAN,
    "a/7.csv": IVAN,
    "a/7.png": PNG,
    "b/7.png": PNG,
}


def planned(path: Path, mode: str, compare: bool) -> Changes:
    """What `plan` counts for `path` in an empty store; with `compare`, by comparing each
    staged user with the store, as it does for a store that holds users."""
    with open_archive(path, ArchiveLimits()) as archive, Staging() as staging:
        for part in archive.scan(now_ms(), staging.known, chunk=3):
            staging.add(staged_rows(part, Settings().image_path, staging.as_csv))
        found = staging.resolve()
        if compare:
            staging._store_empty = False
        return staging.plan(mode, now_ms(), found)


@pytest.mark.parametrize("mode", ["snapshot", "merge"])
def test_a_plan_into_an_empty_store_counts_what_comparing_every_user_counts(
    store_db, tmp_path, mode
):
    path = make_zip(tmp_path / "a.zip", MIXED)
    counted = planned(path, mode, compare=False)
    assert counted == planned(path, mode, compare=True)
    assert (counted.inserted, counted.images_uploaded) == (4, 1)


def index_names() -> set[str]:
    """The names of the users' indexes, on either store."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        query = (
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = 'app_user'"
        )
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'app_user'"
    return {row[0] for row in database.execute_sql(query)}


DECLARED = {index._name for index in User._meta.fields_to_index()}


def test_a_new_store_has_no_user_indexes_until_its_first_load_builds_them(store_db, tmp_path):
    assert not DECLARED & index_names()
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    path = users_zip(tmp_path / "a.zip", [str(i) for i in range(50)], images=("3",))
    assert process(Job(path, "a.zip"), settings, store).inserted == 50
    assert index_names() >= DECLARED
    with pytest.raises(peewee.IntegrityError):
        User.create(**{**User.get(User.user_id == "3").__data__, "id": None, "sort_key": "x"})


def test_a_reader_is_not_kept_waiting_while_the_first_load_builds_the_indexes(
    store_db, tmp_path, monkeypatch
):
    """Built in the load's transaction, they lock out other writers only: a reader asks at
    that moment, and gives up at once if it has to wait for a lock."""
    seen: list[int | str] = []

    def read() -> None:
        try:
            if isinstance(database.obj, peewee.PostgresqlDatabase):
                database.execute_sql("SET lock_timeout = '1s'")
            seen.append(User.select().count())
        except peewee.PeeweeException as error:
            seen.append(str(error))
        finally:
            database.close()

    def build_then_read() -> None:
        build_user_indexes()
        reader = threading.Thread(target=read)
        reader.start()
        reader.join()

    monkeypatch.setattr("shared.staging.build_user_indexes", build_then_read)
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    path = users_zip(tmp_path / "a.zip", ["1", "2", "3"])
    assert process(Job(path, "a.zip"), settings, store).inserted == 3
    assert seen == [0], "the reader sees the store as it was before the load"


def test_a_first_load_whose_insert_fails_leaves_the_store_as_it_was(
    store_db, tmp_path, monkeypatch
):
    before = index_names()
    execute_sql = store_db.execute_sql

    def failing(sql: str, *args: object, **kwargs: object) -> object:
        if sql.startswith(f"INSERT INTO {User._meta.table_name} "):
            raise peewee.OperationalError("disk I/O error")
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(store_db, "execute_sql", failing)
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    path = users_zip(tmp_path / "a.zip", ["1", "2"])
    with pytest.raises(peewee.OperationalError, match="disk I/O error"):
        process(Job(path, "a.zip"), settings, store)
    monkeypatch.undo()
    assert index_names() == before
    assert User.select().count() == 0
    run = Run.select().order_by(Run.id.desc()).get()
    assert (run.status, run.error) == ("failed", "OperationalError: disk I/O error")


def test_users_stored_without_their_indexes_get_them_before_the_merge(store_db, tmp_path):
    """As a load by an earlier zipflow may leave them: the merge's upsert needs the unique
    index on user_id."""
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    first = users_zip(tmp_path / "a.zip", ["1", "2"])
    assert process(Job(first, "a.zip"), settings, store).inserted == 2
    User._schema.drop_indexes()
    assert not DECLARED & index_names()
    second = users_zip(tmp_path / "b.zip", ["2", "3"], images=("2",))
    run = process(Job(second, "b.zip"), replace(settings, mode="merge"), store)
    assert (run.status, run.inserted, run.updated) == ("succeeded", 1, 1), run.error
    assert index_names() >= DECLARED


def test_an_emptied_store_keeps_its_indexes_through_the_next_load(store_db, tmp_path):
    settings = replace(Settings(), data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir, settings.processed_bucket)
    assert process(Job(users_zip(tmp_path / "a.zip", ["1"]), "a.zip"), settings, store).inserted
    User.delete().execute()
    run = process(Job(users_zip(tmp_path / "b.zip", ["2"]), "b.zip"), settings, store)
    assert run.inserted == 1
    assert index_names() >= DECLARED


TEXT = st.text(st.sampled_from('aZé ,"\r\n\t\\.'), min_size=1, max_size=6)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            TEXT,
            TEXT,
            TEXT,
            st.one_of(TEXT, st.none()),
            TEXT,
            st.integers(-(10**13), 10**13),
            st.one_of(st.just("1999-12-31"), TEXT),
            st.integers(0, 99991231),
            st.one_of(TEXT, st.none()),
        ),
        max_size=5,
    )
)
def test_the_users_fast_csv_writes_what_the_csv_module_writes(rows):
    """Commas, quotes, line breaks and NULLs included: COPY must read the same rows."""
    assert valid_users_csv(rows) == csv_text(rows)


def test_the_users_fast_csv_is_read_back_by_postgresql_as_written(store_db):
    if not isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("PostgreSQL's COPY reads it")
    rows = [
        (1, "7", 'a,"b"\r\n/7.csv', "k7", 'Zoë "Z"', "Smith, Jr.", 1, "1970-01-01", 19700101, "f"),
        (2, "8", "plain/8.csv", "k8", "Ann", "Lee", 2, "1970-01-01", 19700101, "g"),
    ]
    database.execute_sql(
        "CREATE TEMPORARY TABLE fast_csv (seq BIGINT, user_id TEXT, member TEXT, sort_key TEXT,"
        " first_name TEXT, last_name TEXT, birthts BIGINT, birthdate TEXT, birth_ymd INTEGER,"
        " csv_fingerprint TEXT)"
    )
    cursor = database.cursor()
    cursor.copy_expert(
        "COPY fast_csv FROM STDIN WITH (FORMAT csv)", io.StringIO(valid_users_csv(rows))
    )
    stored = database.execute_sql("SELECT * FROM fast_csv ORDER BY seq").fetchall()
    database.execute_sql("DROP TABLE fast_csv")
    assert stored == rows
