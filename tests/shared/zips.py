"""Building test archives in code, member by member."""

import random
import zipfile
from pathlib import Path

from shared.demo import demo_png, user_csv

PNG = demo_png(random.Random(7))
IVAN = user_csv("Ivan", "Ivanov", 946674000000)


def make_zip(
    path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """Write `members` (name -> bytes; a name ending in / is a folder) into a zip at `path`."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def users_zip(
    path: Path, ids: list[str], images: tuple[str, ...] = (), folder: str = "data/"
) -> Path:
    """A plain archive of the given users, all born 2000-01-01, with pngs for `images`."""
    members = {folder: b""}
    for user_id in ids:
        members[f"{folder}{user_id}.csv"] = user_csv(
            f"First{user_id}", f"Last{user_id}", 946684800000
        )
    for user_id in images:
        members[f"{folder}{user_id}.png"] = PNG
    return make_zip(path, members)
