"""Reading an archive with helper processes gives what one process reading it alone gives."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from shared import reading
from shared.archive import DIRECTORY_CHUNK, ArchiveError, now_ms, open_archive
from shared.config import ArchiveLimits, Settings
from shared.models import User
from shared.pipeline import Job, process
from shared.reading import HelperFailed, read_rows
from shared.staging import stored_fingerprints
from shared.storage import LocalStore
from tests.shared.zips import IVAN, PNG, make_zip, users_zip

IMAGE_PATH = Settings().image_path


def mixed_zip(path: Path) -> Path:
    """Every kind of member, spread over many small chunks."""
    members: dict[str, bytes] = {"d/": b""}
    for number in range(40):
        members[f"d/{number}.csv"] = IVAN
        if number % 3 == 0:
            members[f"d/{number}.png"] = PNG
        if number % 7 == 0:
            members[f"__MACOSX/d/._{number}.csv"] = b"\x00\x05\x16\x07"
    members |= {
        "d/broken.csv": b"first_name,last_name\nA,B\n",
        "d/9.png": b"GIF89a",
        "d/not an id!.csv": IVAN,
        "e/5.csv": IVAN,
        "notes.txt": b"hello",
    }
    return make_zip(path, members)


def rows_of(
    path: Path, processes: int, chunk: int, known=None, url: str = "", as_csv: bool = False
) -> list:
    with open_archive(path, ArchiveLimits()) as archive:
        rows = read_rows(archive, now_ms(), known, IMAGE_PATH, processes, url, chunk, as_csv)
        return list(rows)


@pytest.mark.parametrize("as_csv", [False, True], ids=["tuples", "csv"])
@pytest.mark.parametrize("processes", [2, 3])
def test_helpers_read_the_same_rows_in_the_same_order(tmp_path, processes, as_csv):
    path = mixed_zip(tmp_path / "a.zip")
    alone = rows_of(path, 1, chunk=4, as_csv=as_csv)
    assert len(alone) > processes * 3
    assert all(isinstance(rows.users, str) == as_csv for rows in alone)
    assert rows_of(path, processes, chunk=4, as_csv=as_csv) == alone


def test_helpers_look_up_the_stored_fingerprints_themselves(store_db, database_url, tmp_path):
    path = users_zip(tmp_path / "a.zip", [str(number) for number in range(30)])
    settings = replace(Settings(), database_url=database_url, data_dir=tmp_path, read_processes=1)
    process(Job(path, "a.zip"), settings, LocalStore(tmp_path, "processed"))
    alone = rows_of(path, 1, chunk=4, known=stored_fingerprints, url=database_url)
    together = rows_of(path, 2, chunk=4, known=stored_fingerprints, url=database_url)
    assert together == alone
    assert sum(len(rows.unchanged) for rows in together) == 30
    assert all(rows.users == [] for rows in together)


def test_an_error_in_a_helpers_chunk_is_the_error_a_single_reader_reports(tmp_path):
    members = {f"d/{number}.csv": IVAN for number in range(12)}
    path = make_zip(tmp_path / "a.zip", members)
    # Corrupt the data of d/4.csv, in the second chunk of three members: the helper's.
    data = bytearray(path.read_bytes())
    at = data.index(b"d/4.csv") + len("d/4.csv")
    data[at + 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as alone:
        rows_of(path, 1, chunk=3)
    with pytest.raises(ArchiveError) as together:
        rows_of(path, 2, chunk=3)
    assert str(together.value) == str(alone.value)
    assert "d/4.csv" in str(alone.value)
    # The helpers were stopped with the failed read; the next one starts new ones.
    assert len(rows_of(users_zip(tmp_path / "b.zip", ["1", "2", "3", "4"]), 2, chunk=2)) == 3


def test_the_limit_on_the_whole_archive_counts_every_share(tmp_path):
    path = users_zip(tmp_path / "a.zip", [str(number) for number in range(8)])
    with open_archive(path, ArchiveLimits()) as archive:
        unpacked = sum(
            rows.unpacked for rows in read_rows(archive, now_ms(), None, IMAGE_PATH, 1, "", 2)
        )
    # Each of two shares unpacks to about half of the total, under this limit.
    limits = ArchiveLimits(max_total_bytes=unpacked * 3 // 4)
    with open_archive(path, limits) as archive, pytest.raises(ArchiveError, match="more than"):
        list(read_rows(archive, now_ms(), None, IMAGE_PATH, 2, "", 2))


def test_a_helper_that_dies_fails_the_read_instead_of_hanging_it(tmp_path):
    path = users_zip(tmp_path / "a.zip", [str(number) for number in range(40)])
    with open_archive(path, ArchiveLimits()) as archive:
        rows = read_rows(archive, now_ms(), None, IMAGE_PATH, 2, "", 2)
        next(rows)
        os.kill(reading._helpers[0].process.pid, signal.SIGKILL)
        with pytest.raises(HelperFailed, match="stopped"):
            list(rows)
    assert len(rows_of(path, 2, chunk=2)) == 21


def test_a_load_read_by_two_processes_stores_what_one_process_stores(store_db, tmp_path):
    """Through the pipeline: more members than one chunk of the directory holds, a user in
    two folders far apart, a broken file and images, into the same store each time."""
    members: dict[str, bytes] = {f"d/{number}.csv": IVAN for number in range(DIRECTORY_CHUNK)}
    members |= {"d/3.png": PNG, "d/broken.csv": b"no header", "e/3.csv": IVAN, "e/8.png": PNG}
    path = make_zip(tmp_path / "a.zip", members)
    results = []
    for processes in (1, 2):
        User.delete().execute()
        settings = replace(Settings(), data_dir=tmp_path, read_processes=processes)
        run = process(Job(path, "a.zip"), settings, LocalStore(tmp_path, "processed"))
        assert run.status == "succeeded", run.error
        users = list(User.select(User.user_id, User.sort_key, User.img_path).tuples())
        results.append((run.inserted, run.images, run.rejections, sorted(users)))
    assert results[0] == results[1]
    assert results[0][0] == DIRECTORY_CHUNK - 1 and results[0][1] == 1


KILLED_READER = """
import os, signal, sys
from shared import reading
from shared.archive import now_ms, open_archive
from shared.config import ArchiveLimits, Settings

if __name__ == "__main__":
    with open_archive(sys.argv[1], ArchiveLimits()) as archive:
        rows = reading.read_rows(archive, now_ms(), None, Settings().image_path, 2, "", 2)
        next(rows)
        print(reading._helpers[0].process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_helper_ends_when_the_process_it_reads_for_is_killed(tmp_path):
    """Otherwise it would wait for work, or to send a chunk, for ever."""
    path = users_zip(tmp_path / "a.zip", [str(number) for number in range(60)])
    script = tmp_path / "killed_reader.py"
    script.write_text(KILLED_READER)
    root = Path(__file__).resolve().parents[2]
    reader = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    helper = int(reader.stdout.readline())
    assert reader.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while running(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(helper)
