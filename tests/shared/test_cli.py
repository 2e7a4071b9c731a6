"""`zipflow process` and `zipflow demo-data`, run as a user runs them: a real subprocess."""

import fcntl
import json
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import zipfile
from pathlib import Path

import pytest

from tests.shared.zips import IVAN, PNG, make_zip, users_zip


@pytest.fixture
def run_cli(tmp_path, database_url):
    env = {
        **os.environ,
        "ZIPFLOW_DATABASE_URL": database_url,
        "ZIPFLOW_DATA_DIR": str(tmp_path / "data"),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "zipflow", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_process_prints_a_summary_writes_the_csv_and_images_and_exits_0(run_cli, tmp_path):
    archive = make_zip(
        tmp_path / "a.zip", {"d/1.csv": IVAN, "d/2.csv": b"first_name\n", "d/1.png": PNG}
    )
    result = run_cli("process", str(archive), "--csv", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    assert "users in archive 1: 1 inserted" in result.stdout
    assert "d/2.csv: no data row" not in result.stdout
    assert "d/2.csv: missing column(s): last_name, birthts" in result.stdout
    assert (tmp_path / "out.csv").read_text().splitlines()[
        1
    ] == "1,Ivan,Ivanov,946674000000,processed/images/1.png"
    assert (tmp_path / "data/processed/images/1.png").read_bytes() == PNG


def test_process_json_gives_counts_rejections_and_duration(run_cli, tmp_path):
    result = run_cli(
        "process", str(users_zip(tmp_path / "a.zip", ["1", "2"])), "--json", "--mode", "merge"
    )
    summary = json.loads(result.stdout)
    assert result.returncode == 0
    assert (summary["status"], summary["mode"], summary["inserted"], summary["rejections"]) == (
        "succeeded",
        "merge",
        2,
        [],
    )
    assert summary["duration_seconds"] >= 0


def test_a_failed_run_exits_non_zero_with_a_one_line_reason(run_cli, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    result = run_cli("process", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "zipflow process: failed: not a zip archive, or a corrupt one: no end of central directory"
    ]


def test_a_missing_file_and_a_bad_mode_are_usage_errors(run_cli, tmp_path):
    assert run_cli("process", str(tmp_path / "nope.zip")).returncode == 2
    assert run_cli("process", str(tmp_path / "nope.zip"), "--mode", "append").returncode == 2


def test_demo_data_is_deterministic_and_realistic(run_cli, tmp_path):
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    assert run_cli("demo-data", str(first), "--users", "50", "--seed", "3").returncode == 0
    assert run_cli("demo-data", str(second), "--users", "50", "--seed", "3").returncode == 0
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "src-data-3/" in names and any(n.startswith("__MACOSX/") for n in names)
    csvs = [n for n in names if n.endswith(".csv") and not n.startswith("__MACOSX")]
    pngs = [n for n in names if n.endswith(".png")]
    assert len(csvs) == 50 and 0 < len(pngs) < 50
    result = run_cli("process", str(first), "--json")
    assert json.loads(result.stdout)["users_in_archive"] == 50


def test_process_loads_the_sample_layout_with_macos_noise(run_cli, tmp_path):
    archive = tmp_path / "demo.zip"
    run_cli("demo-data", str(archive), "--users", "20")
    summary = json.loads(run_cli("process", str(archive), "--json").stdout)
    assert (summary["users_in_archive"], summary["rejected"]) == (20, 0)
    assert summary["images"] == len(
        [n for n in zipfile.ZipFile(archive).namelist() if n.endswith(".png")]
    )
    assert Path(tmp_path / "data/processed/output.csv").exists()


def test_demo_data_finder_gives_every_entry_its_macos_partner(run_cli, tmp_path):
    archive = tmp_path / "finder.zip"
    assert run_cli("demo-data", str(archive), "--users", "30", "--finder").returncode == 0
    names = zipfile.ZipFile(archive).namelist()
    files = [n for n in names if n.endswith((".csv", ".png")) and not n.startswith("__MACOSX")]
    partners = [n for n in names if n.startswith("__MACOSX/")]
    assert sorted(partners) == sorted(
        ["__MACOSX/._src-data-0"] + [f"__MACOSX/src-data-0/._{n.split('/')[-1]}" for n in files]
    )
    summary = json.loads(run_cli("process", str(archive), "--json").stdout)
    assert (summary["users_in_archive"], summary["rejected"]) == (30, 0)


def test_a_large_archive_shows_a_progress_bar_on_a_terminal_only(run_cli, tmp_path, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the bar does not depend on the store")
    archive = tmp_path / "large.zip"
    assert run_cli("demo-data", str(archive), "--users", "20000", "--no-images").returncode == 0
    piped = run_cli("process", str(archive))
    assert piped.returncode == 0 and "reading" not in piped.stderr

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {
        **os.environ,
        "ZIPFLOW_DATABASE_URL": database_url,
        "ZIPFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "zipflow", "process", str(archive)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    ) as child:
        os.close(terminal)
        shown = b""
        while chunk := _read_or_eof(controller):
            shown += chunk
        assert child.wait(timeout=120) == 0
    os.close(controller)
    assert b"reading: 100%" in shown
    assert b"20007/20007" in shown


def _read_or_eof(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal closes when the child exits
        return b""


def stored_user_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "zipflow.db") as connection:
        return [row[0] for row in connection.execute("SELECT user_id FROM app_user ORDER BY 1")]


def test_csv_naming_a_directory_is_refused_before_the_store_changes(zipflow, tmp_path):
    assert zipflow("process", str(users_zip(tmp_path / "older.zip", ["1"]))).returncode == 0
    (tmp_path / "out").mkdir()
    result = zipflow("process", str(users_zip(tmp_path / "nested.zip", ["2"])), "--csv", "out/")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "zipflow process: --csv out is a directory; name a file, such as out/output.csv"
    ]
    assert stored_user_ids(tmp_path) == ["1"]
    assert not (tmp_path / "data/processed/images/2.png").exists()


def test_csv_naming_the_input_zip_is_refused_and_the_zip_kept(zipflow, tmp_path):
    archive = users_zip(tmp_path / "a.zip", ["1"])
    content = archive.read_bytes()
    result = zipflow("process", str(archive), "--csv", str(archive))
    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [f"zipflow process: --csv {archive} is the archive being loaded; name another file"],
    )
    assert archive.read_bytes() == content
    assert not (tmp_path / "zipflow.db").exists()


def test_csv_failing_after_the_commit_exits_3_and_says_the_store_was_loaded(zipflow, tmp_path):
    result = zipflow("process", str(users_zip(tmp_path / "a.zip", ["1"])), "--csv", "/dev/full")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "zipflow process: run 1 loaded the store, but writing /dev/full failed:"
        " OSError: [Errno 28] No space left on device"
    ]
    assert "run 1 succeeded" in result.stdout
    assert "  warning: writing /dev/full failed" in result.stdout
    assert stored_user_ids(tmp_path) == ["1"]


def test_a_local_zip_with_an_old_date_is_loaded_as_of_now_in_merge_mode(zipflow, tmp_path):
    """A zip copied with cp -p or unpacked from an old archive keeps an old mtime; its
    changes must still win over what an earlier load stored."""
    first = users_zip(tmp_path / "first.zip", ["1"])
    assert zipflow("process", str(first), "--mode", "merge").returncode == 0
    changed = make_zip(
        tmp_path / "old.zip", {"d/1.csv": b"first_name,last_name,birthts\nNew,Name,946684800000\n"}
    )
    os.utime(changed, (946684800, 946684800))  # dated 2000-01-01
    result = zipflow("process", str(changed), "--mode", "merge")
    assert "1 updated" in result.stdout and "0 kept (newer data)" in result.stdout


def test_as_of_loads_an_archive_as_older_and_the_summary_explains_kept(zipflow, tmp_path):
    assert (
        zipflow("process", str(users_zip(tmp_path / "a.zip", ["1"])), "--mode", "merge").returncode
        == 0
    )
    older = users_zip(tmp_path / "b.zip", ["1", "2"])
    result = zipflow("process", str(older), "--mode", "merge", "--as-of", "2020-01-01")
    assert result.returncode == 0
    assert "1 inserted, 0 updated, 0 deleted, 0 unchanged, 1 kept (newer data)" in result.stdout
    assert (
        "    kept (newer data): 1 users were stored from an archive newer than this one,"
        " and merge mode keeps the newer row (--as-of sets this one's moment)"
    ) in result.stdout
    bad = zipflow("process", str(older), "--as-of", "yesterday")
    assert bad.returncode == 2 and "is not a date or time such as 2026-11-28" in bad.stderr


def test_the_summary_names_the_store_and_counts_deleted_images(zipflow, tmp_path):
    zipflow("process", str(users_zip(tmp_path / "a.zip", ["1", "2"], images=("1", "2"))))
    result = zipflow("process", str(users_zip(tmp_path / "b.zip", ["1"], images=("1",))))
    assert (
        f"  into the SQLite store {tmp_path / 'zipflow.db'}, images in the local directory"
        in result.stdout
    )
    assert "  images 1: 0 written, 1 deleted" in result.stdout
