"""output.csv written by two processes is byte for byte what one process writes."""

import threading
from dataclasses import replace
from pathlib import Path

import peewee
import pytest

from shared import export, reading
from shared.config import Settings
from shared.export import export_csv
from shared.pipeline import Job, process
from shared.storage import LocalStore
from tests.shared.zips import PNG, make_zip

NAMES = [b'"O""Brien, Jr",Zo\xc3\xab,0', b'A  B,"x,y",1', b"\\.,'quoted',2", b"Ann,Lee,-5"]


@pytest.fixture
def loaded(store_db, database_url, tmp_path, monkeypatch) -> str:
    """A SQLite store of 23 users, some with images, and splitting from 2 users on."""
    if isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("SQLite only: PostgreSQL writes output.csv itself, in one COPY")
    members = {
        f"{user_id}.csv": b"first_name,last_name,birthts\n" + NAMES[number % len(NAMES)] + b"\n"
        for number, user_id in enumerate([*map(str, range(1, 20)), "007", "a", "b-2", "Z_9"])
    }
    members |= {"3.png": PNG, "a.png": PNG}
    settings = replace(Settings(), database_url=database_url, data_dir=tmp_path / "data")
    run = process(
        Job(make_zip(tmp_path / "a.zip", members), "a.zip"), settings, LocalStore(tmp_path, "p")
    )
    assert (run.status, run.inserted) == ("succeeded", 23)
    monkeypatch.setattr(export, "SPLIT_FROM_USERS", 2)
    return database_url


def test_two_processes_write_what_one_writes(loaded, tmp_path, monkeypatch):
    alone = export_csv(tmp_path / "alone.csv", loaded, processes=1).read_bytes()
    assert alone.count(b"\n") == 24
    written_here: list[int] = []
    write_rows = export._write_rows

    def counted(out, query) -> None:
        written_here.append(query.count())
        write_rows(out, query)

    monkeypatch.setattr(export, "_write_rows", counted)
    together = export_csv(tmp_path / "together.csv", loaded, processes=2).read_bytes()
    assert together == alone
    assert written_here == [11], "this process should have written the first half only"


def test_a_helper_that_fails_its_half_leaves_this_process_writing_it_all(
    loaded, tmp_path, monkeypatch, caplog
):
    alone = export_csv(tmp_path / "alone.csv", loaded, processes=1).read_bytes()
    # The helper opens a store without the users table, so its query fails; this process
    # still reads the loaded store.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setattr(export, "_middle_key", lambda: "00000000000000000010")
    assert export_csv(tmp_path / "fallback.csv", empty, processes=2).read_bytes() == alone
    assert "no such table: app_user" in caplog.text
    assert "writing it all here" in caplog.text
    assert reading._helpers == [], "the failed helper was not stopped"
    monkeypatch.undo()
    monkeypatch.setattr(export, "SPLIT_FROM_USERS", 2)
    assert export_csv(tmp_path / "again.csv", loaded, processes=2).read_bytes() == alone


def test_while_another_load_has_the_helpers_one_process_writes_it_all(loaded, tmp_path):
    alone = export_csv(tmp_path / "alone.csv", loaded, processes=1).read_bytes()
    taken = threading.Event()
    release = threading.Event()

    def hold_the_helpers() -> None:
        with reading._helpers_lock:
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_helpers)
    holder.start()
    taken.wait(10)
    try:
        assert export_csv(tmp_path / "busy.csv", loaded, processes=2).read_bytes() == alone
    finally:
        release.set()
        holder.join()


def test_a_small_store_is_written_by_one_process(store_db, database_url, tmp_path):
    if isinstance(store_db, peewee.PostgresqlDatabase):
        pytest.skip("SQLite only")
    assert export._middle_key() is None
    path = export_csv(Path(tmp_path / "empty.csv"), database_url, processes=2)
    assert path.read_text() == "user_id,first_name,last_name,birthts,img_path\n"
