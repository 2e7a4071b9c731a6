"""Two steps of staging a load, each beside the way it was done before, in the same run.

    python bench/staging_bench.py [--users 100000] [--runs 5]

Reads the users of the cached demo archive of `bench/pipeline_bench.py` into staging rows
once, then times, over `--runs` runs (median and best):

- the valid users' CSV text for PostgreSQL's COPY: `valid_users_csv` beside the csv
  module (`csv_text`), on the same rows;
- the end of a SQLite load's staging: detaching the private database that holds the
  staged users (what `shared.staging.Staging` does) beside dropping a temporary table of
  the same rows (what it did before).
"""

import argparse
import sqlite3
import statistics
import time
from collections.abc import Callable

from pipeline_bench import bench_archive, cpu_model  # bench/pipeline_bench.py, beside this

from shared.archive import now_ms, open_archive
from shared.config import Settings
from shared.staging import USER_TABLE, VALID_COLUMNS, csv_text, staged_rows, valid_users_csv


def user_rows(users: int) -> list[tuple]:
    """The valid users' staging rows of the demo archive, as `staged_rows` builds them."""
    settings = Settings.from_env()
    rows: list[tuple] = []
    with open_archive(bench_archive(users, images=False, plain=False), settings.limits) as zip_:
        for chunk in zip_.scan(now_ms()):
            rows += staged_rows(chunk, settings.image_path).users
    return rows


def staged(connection: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    definition = ", ".join(f"{column} {kind}" for column, kind in USER_TABLE)
    connection.execute(f"CREATE TABLE {table} ({definition})")
    marks = ", ".join("?" * len(VALID_COLUMNS))
    connection.executemany(
        f"INSERT INTO {table} ({', '.join(VALID_COLUMNS)}) VALUES ({marks})",  # noqa: S608
        rows,
    )
    connection.commit()


def drop_temporary(rows: list[tuple]) -> float:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("PRAGMA temp.cache_size = -65536")
    staged(connection, "temp.staged_users", rows)
    started = time.perf_counter()
    connection.execute("DROP TABLE temp.staged_users")
    return time.perf_counter() - started


def detach_private(rows: list[tuple]) -> float:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("ATTACH DATABASE '' AS stage")
    connection.execute("PRAGMA stage.cache_size = -65536")
    staged(connection, "stage.staged_users", rows)
    started = time.perf_counter()
    connection.execute("DETACH DATABASE stage")
    return time.perf_counter() - started


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def report(name: str, seconds: list[float]) -> float:
    middle = statistics.median(seconds)
    print(f"{name:>38}: median {middle * 1000:7.1f} ms, best {min(seconds) * 1000:7.1f} ms")
    return middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = user_rows(args.users)
    print(f"{len(rows)} valid users' staging rows; machine: {cpu_model()}")

    times: dict[str, list[float]] = {}
    for _ in range(args.runs):
        times.setdefault("csv module (csv_text)", []).append(timed(lambda: csv_text(rows)))
        times.setdefault("valid_users_csv", []).append(timed(lambda: valid_users_csv(rows)))
        times.setdefault("DROP of a temporary table", []).append(drop_temporary(rows))
        times.setdefault("DETACH of the private database", []).append(detach_private(rows))
    medians = {name: report(name, seconds) for name, seconds in times.items()}
    csv_ratio = medians["valid_users_csv"] / medians["csv module (csv_text)"]
    detach_ratio = medians["DETACH of the private database"] / medians["DROP of a temporary table"]
    print(f"ratios of medians: valid_users_csv / csv module {csv_ratio:.2f},")
    print(f"  DETACH / DROP {detach_ratio:.3f}")


if __name__ == "__main__":
    main()
