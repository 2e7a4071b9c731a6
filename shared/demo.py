"""Deterministic, realistic archives for the demo, the tests and the benchmarks.

They look like real uploads: everything inside one folder, most users with a png, some
without, and the `__MACOSX/` and `.DS_Store` entries that macOS adds to archives it makes.
"""

import random
import struct
import zipfile
import zlib
from pathlib import Path

FIRST_NAMES = (
    "Ivan",
    "Anna",
    "Zoë",
    "Łukasz",
    "Maria",
    "John",
    "Amélie",
    "Sven",
    "Aiko",
    "Omar",
    "Chloé",
    "Dmitry",
)
LAST_NAMES = (
    "Ivanov",
    "Smith",
    "Müller",
    "Kowalski",
    "O'Brien",
    "García",
    "Tanaka",
    "Smith, Jr.",
    "Nguyen",
    "Petrova",
)
# Births between 1940-01-01 and 2015-12-31, in ms since the epoch.
BIRTH_RANGE_MS = (-946_771_200_000, 1_451_520_000_000)
IMAGE_SHARE = 0.9
NOISE_USERS = 5
# The header of the resource-fork files macOS writes beside every file it archives.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(186)


def demo_png(rng: random.Random, side: int = 8) -> bytes:
    """A small valid PNG of one random colour, so every user's image differs in content."""
    colour = bytes(rng.randrange(256) for _ in range(3))
    raw = b"".join(b"\x00" + colour * side for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def user_csv(first_name: str, last_name: str, birthts: int) -> bytes:
    """A user file as the real exports write it: a spaced header and one spaced row."""
    names = [f'"{name}"' if "," in name else name for name in (first_name, last_name)]
    return f"first_name, last_name, birthts\n{names[0]}, {names[1]}, {birthts}\n".encode()


def write_demo_archive(
    path: Path, users: int, seed: int = 0, images: bool = True, finder: bool = False
) -> None:
    """Write `users` users (ids from 1000) into `path`; the same arguments give the same bytes.

    `finder` shapes it like the real uploads, made with macOS Finder's Compress: every
    entry has an AppleDouble partner under `__MACOSX/`, so 100,000 users without images
    make 200,000 members. Otherwise only the first few users' files have one.
    """
    rng = random.Random(seed)
    folder = f"src-data-{seed}/"
    # Written beside the target and renamed at the end: a failure never leaves half an archive.
    partial = path.with_name(path.name + ".part")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write(archive, folder, b"", directory=True)
            _write(archive, ".DS_Store", b"\x00\x00\x00\x01Bud1")
            if finder:
                _write(archive, f"__MACOSX/._{folder.rstrip('/')}", APPLE_DOUBLE)
            for index in range(users):
                user_id = str(1000 + index)
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                birthts = rng.randrange(*BIRTH_RANGE_MS)
                names = [f"{user_id}.csv"]
                _write(archive, f"{folder}{user_id}.csv", user_csv(first, last, birthts))
                if images and rng.random() < IMAGE_SHARE:
                    names.append(f"{user_id}.png")
                    _write(archive, f"{folder}{user_id}.png", demo_png(rng))
                if finder:
                    for name in names:
                        _write(archive, f"__MACOSX/{folder}._{name}", APPLE_DOUBLE)
                elif index < NOISE_USERS:
                    _write(archive, f"__MACOSX/{folder}._{user_id}.csv", APPLE_DOUBLE)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def _write(archive: zipfile.ZipFile, name: str, data: bytes, directory: bool = False) -> None:
    # A fixed timestamp keeps the archive's bytes reproducible.
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED if directory else zipfile.ZIP_DEFLATED
    if directory:
        info.external_attr = 0o40755 << 16 | 0x10
    archive.writestr(info, data)
