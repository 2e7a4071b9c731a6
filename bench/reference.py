"""The straightforward load that zipflow's figures are measured against.

`zipfile` to read, `csv` to parse, one `executemany` inside one transaction to write, into
the same table and columns zipflow fills (so the indexes cost both the same). It checks
less than zipflow (no limits, no name or id rules, no rejections) and writes no images:
it is the code one would write first, not a second implementation.
"""

import csv
import io
import sqlite3
import zipfile
from datetime import UTC, datetime
from pathlib import PurePosixPath

from shared.ages import birthdate_of, ymd
from shared.models import sort_key

COLUMNS = (
    "user_id",
    "sort_key",
    "first_name",
    "last_name",
    "birthts",
    "birthdate",
    "birth_ymd",
    "csv_fingerprint",
    "source_modified_ms",
    "created_at",
    "updated_at",
)


def reference_load(archive: str, sqlite_path: str) -> int:
    """Load every user file of `archive` into the app_user table of `sqlite_path`.

    A user already there is updated (an upsert), so running it twice is the reference reload.
    """
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = []
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            name = info.filename
            if info.is_dir() or "__MACOSX" in name or not name.lower().endswith(".csv"):
                continue
            text = opened.read(info).decode("utf-8-sig")
            header, row = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if r]
            fields = dict(zip([column.strip().lower() for column in header], row, strict=True))
            user_id = PurePosixPath(name).stem
            birthts = int(fields["birthts"])
            birthdate = birthdate_of(birthts)
            rows.append(
                (
                    user_id,
                    sort_key(user_id),
                    fields["first_name"].strip(),
                    fields["last_name"].strip(),
                    birthts,
                    birthdate.isoformat(),
                    ymd(birthdate),
                    f"{info.CRC:08x}-{info.file_size}",
                    0,
                    stamp,
                    stamp,
                )
            )
    connection = sqlite3.connect(sqlite_path)
    updates = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[2:-2])
    with connection:
        connection.executemany(
            f"INSERT INTO app_user ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
            f" ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
            rows,
        )
    connection.close()
    return len(rows)
