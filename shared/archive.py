"""An uploaded archive in, validated user records, image references and rejections out.

Reading is the hot loop of every load, and `zipfile` spends it on bookkeeping: a full
ZipInfo per member, then a ZipExtFile per read. Here the central directory's packed
records are read in chunks for the few fields a load needs, and each member is read
straight from a memory map at its offset, with its size and CRC-32 still checked. Most
user files share one shape, which a single pattern reads; anything else goes to the
full parser, so every rule still holds. Member names only ever yield a user id after
validation; they are never used as file-system paths.
"""

import codecs
import csv
import functools
import io
import mmap
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from shared.config import ArchiveLimits
from shared.models import MAX_USER_ID_LENGTH

REQUIRED_COLUMNS = ("first_name", "last_name", "birthts")
USER_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_USER_ID_LENGTH}}}")
# 19 digits hold any 64-bit integer; a longer number is no birth time.
INTEGER = re.compile(r"-?[0-9]{1,19}")
# Control characters (NUL, escapes, line breaks) have no place in a name, and PostgreSQL
# refuses NUL in text outright.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 200
# The shape of nearly every user file: the usual header and one unquoted data row.
_COMMON_FILE = re.compile(
    r"first_name, ?last_name, ?birthts\r?\n([^\",\r\n]*),([^\",\r\n]*),([^\",\r\n]*)(?:\r?\n)?"
)
EARLIEST_BIRTHTS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
# A member smaller than this cannot be a meaningful zip bomb whatever its ratio: short
# CSV files of repeated characters legitimately compress very well.
RATIO_CHECK_FROM_BYTES = 1024 * 1024

# Only the fields a load needs are unpacked; "x" skips the others.
# Local header: signature, name length, extra length.
_LOCAL_HEADER = struct.Struct("<4s22x2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
# Central entry: signature, flags, method, CRC-32, compressed size, size, name length,
# extra length, comment length, local header offset.
_CENTRAL_ENTRY = struct.Struct("<4s4x2H4x3L3H8xL")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
# The same entry's signature and the lengths of what follows it: enough to step over it.
_ENTRY_LENGTHS = struct.Struct("<4s24x3H")
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_MAX_COMMENT = 0xFFFF
_UTF8_NAMES = 0x800
_ZIP64_EXTRA = 0x0001
# Directory entries are read and handed on this many at a time.
DIRECTORY_CHUNK = 10_000
# Which chunks of the directory a process reads: (part, parts) reads the chunks numbered
# part, part + parts, part + 2 * parts, ...
Share = tuple[int, int]
WHOLE: Share = (0, 1)
# A deflated member up to this size is unpacked in one call (see Archive.read).
SMALL_DEFLATE_BYTES = 16 * 1024


class Member(NamedTuple):
    """The central directory's facts about one member, all that reading it needs."""

    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


class ArchiveError(Exception):
    """The archive as a whole cannot be loaded; the message says why, for the uploader."""


class UserRecord(NamedTuple):
    user_id: str
    first_name: str
    last_name: str
    birthts: int
    member: str
    csv_fingerprint: str = ""


@dataclass(frozen=True)
class ImageRef:
    """A user's png inside the archive, not yet read.

    The fingerprint (CRC-32 and size from the central directory) tells whether the image
    changed since the last load without decompressing it.
    """

    user_id: str
    member: "Member"
    fingerprint: str


@dataclass(frozen=True)
class Rejection:
    member: str
    user_id: str | None
    reason: str

    def as_dict(self) -> dict[str, str | None]:
        return {"member": self.member, "user_id": self.user_id, "reason": self.reason}


@dataclass
class Chunk:
    """A chunk of the archive, each member judged on its own.

    `users` are the valid user files; `unchanged` the ones whose fingerprint says they are
    the files last loaded; `failed` the user files that break a rule; `not_png` the png
    files that are no PNG image; `refused` the csv and png files whose name is no user id;
    `first` numbers the chunk's first entry in the directory (from 0), `read` counts the
    entries read so far, and `unpacked` is what this chunk's members unpack to, in bytes.
    """

    users: list[UserRecord] = field(default_factory=list)
    # (user id, member name, fingerprint)
    unchanged: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[Rejection] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)
    not_png: list[Rejection] = field(default_factory=list)
    refused: list[Rejection] = field(default_factory=list)
    ignored: int = 0
    first: int = 0
    read: int = 0
    unpacked: int = 0


class Archive:
    """An open zip file, memory-mapped, whose central directory is read in chunks.

    Only the end record is read on opening (and the member count checked against its
    limit); `entries` then walks the directory a chunk at a time, checking each entry
    against the limits, so a directory of millions of members is never held at once.
    """

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.path = path
        self.limits = limits
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._check_size()
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.member_count, self._directory_at, self._shift = _find_directory(self._map)
            _check_member_count(self.member_count, limits.max_members)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Archive":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if hasattr(self, "_map"):
            self._map.close()
        self._file.close()

    def _check_size(self) -> None:
        size = self._file.seek(0, io.SEEK_END)
        if size == 0:
            raise ArchiveError("the file is empty, not a zip archive")
        if size > self.limits.max_archive_bytes:
            raise ArchiveError(
                f"the archive is {size} bytes, over the limit of {self.limits.max_archive_bytes}"
            )

    def entries(self, chunk: int = DIRECTORY_CHUNK, share: Share = WHOLE) -> Iterator["Entries"]:
        """The central directory, `chunk` entries at a time, sorted into csv, png and noise.

        One pass over the packed records reads only the fields a load needs (`zipfile`
        builds a full ZipInfo per member, seconds for 200,000 members). Each entry is
        checked against the limits as it is read; noise (folders, `__MACOSX/`, dot files,
        other extensions) is only counted, never made into a Member. With a `share` of
        (part, parts), only the chunks numbered part, part + parts, ... are read; the
        others are stepped over by their lengths alone, for other processes to read.
        """
        part, parts = share
        position = self._directory_at
        total = 0
        for index, first in enumerate(range(0, self.member_count, chunk)):
            count = min(chunk, self.member_count - first)
            if index % parts != part:
                position = self._step_over(position, count)
                continue
            batch = Entries(first=first, read=first + count)
            before = total
            position, total = self._read_entries(position, count, total, batch)
            batch.unpacked = total - before
            yield batch

    def _read_entries(
        self, position: int, count: int, total: int, batch: "Entries"
    ) -> tuple[int, int]:
        """Read `count` entries from `position` into `batch`; return where the next one
        starts and the bytes unpacked so far, which the limit on the whole archive bounds."""
        limits = self.limits
        data = self._map
        unpack = _CENTRAL_ENTRY.unpack_from
        entry_size = _CENTRAL_ENTRY.size
        for _ in range(count):
            try:
                (
                    signature,
                    flags,
                    method,
                    crc,
                    compressed,
                    size,
                    name_length,
                    extra_length,
                    comment_length,
                    offset,
                ) = unpack(data, position)
            except struct.error:
                raise ArchiveError("corrupt zip archive: truncated central directory") from None
            if signature != _CENTRAL_SIGNATURE:
                raise ArchiveError("corrupt zip archive: bad central directory entry")
            name_at = position + entry_size
            name = _decode_name(data[name_at : name_at + name_length], flags)
            extra_at = name_at + name_length
            position = extra_at + extra_length + comment_length
            if compressed == 0xFFFFFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF:
                compressed, size, offset = _zip64_extra(
                    data[extra_at : extra_at + extra_length], compressed, size, offset
                )
            if size > limits.max_member_bytes:
                raise ArchiveError(
                    f"member {name!r} unpacks to {size} bytes,"
                    f" over the limit of {limits.max_member_bytes}"
                )
            if size >= RATIO_CHECK_FROM_BYTES and size // max(compressed, 1) > limits.max_ratio:
                raise ArchiveError(
                    f"member {name!r} expands {size // max(compressed, 1)} times, over the"
                    f" limit of {limits.max_ratio}: refusing a likely zip bomb"
                )
            total += size
            check_unpacked_total(total, limits)
            kind = name[-4:].lower()
            if kind not in (".csv", ".png"):
                if not name.endswith("/"):
                    batch.ignored += 1
            else:
                path = name.replace("\\", "/") if "\\" in name else name
                base = path[path.rfind("/") + 1 :]
                if base.startswith(".") or path.startswith("__MACOSX/") or "/__MACOSX/" in path:
                    batch.ignored += 1
                else:
                    member = Member(
                        name, flags, method, crc, compressed, size, offset + self._shift
                    )
                    (batch.csv if kind == ".csv" else batch.png).append((base[:-4], member))
        return position, total

    def _step_over(self, position: int, count: int) -> int:
        """Where the entry `count` entries after the one at `position` starts."""
        data = self._map
        lengths = _ENTRY_LENGTHS.unpack_from
        entry_size = _CENTRAL_ENTRY.size
        for _ in range(count):
            try:
                signature, name_length, extra_length, comment_length = lengths(data, position)
            except struct.error:
                raise ArchiveError("corrupt zip archive: truncated central directory") from None
            if signature != _CENTRAL_SIGNATURE:
                raise ArchiveError("corrupt zip archive: bad central directory entry")
            position += entry_size + name_length + extra_length + comment_length
        return position

    def read_head(self, member: Member, count: int) -> bytes:
        """The first `count` bytes of a member, unpacking no more than that.

        Unchecked (the CRC-32 covers the whole member): `read` checks the bytes before use.
        """
        if member.flags & 0x1 or member.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return self.read(member)[:count]  # raises with the reason
        try:
            _, name_length, extra_length = _LOCAL_HEADER.unpack_from(self._map, member.offset)
        except struct.error:
            return self.read(member)[:count]
        start = member.offset + _LOCAL_HEADER.size + name_length + extra_length
        raw = self._map[start : start + min(member.compressed, count + HEAD_SLACK_BYTES)]
        if member.method == zipfile.ZIP_STORED:
            return raw[:count]
        try:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, count)
        except zlib.error as error:
            raise ArchiveError(f"member {member.name!r} is corrupt: {error}") from None

    def read(self, member: Member) -> bytes:
        """A member's bytes, checked against its declared size and CRC-32."""
        if member.flags & 0x1:
            raise ArchiveError(f"member {member.name!r} is encrypted")
        if member.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(
                f"member {member.name!r} uses compression method {member.method};"
                " only stored and deflated members are accepted"
            )
        try:
            signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(
                self._map, member.offset
            )
        except struct.error:
            signature = b""
        if signature != _LOCAL_SIGNATURE:
            raise ArchiveError(f"member {member.name!r} is corrupt: bad local header")
        data_start = member.offset + _LOCAL_HEADER.size + name_length + extra_length
        raw = self._map[data_start : data_start + member.compressed]
        try:
            if member.method == zipfile.ZIP_STORED:
                data = raw
            elif member.compressed <= SMALL_DEFLATE_BYTES:
                # Deflate expands at most about 1,032 times, so a member this small cannot
                # unpack to more than a few megabytes, and one call is cheaper per member.
                data = zlib.decompress(raw, -zlib.MAX_WBITS)
            else:
                data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, member.size + 1)
        except zlib.error as error:
            raise ArchiveError(f"member {member.name!r} is corrupt: {error}") from None
        if len(data) != member.size or zlib.crc32(data) != member.crc:
            raise ArchiveError(f"member {member.name!r} is corrupt: size or CRC-32 does not match")
        return data

    def scan(
        self,
        now_ms: int,
        known: Callable[[list[str]], Mapping[str, str]] | None = None,
        chunk: int = DIRECTORY_CHUNK,
        share: Share = WHOLE,
    ) -> Iterator["Chunk"]:
        """Every member judged on its own, a chunk of the directory at a time.

        `known(user_ids)` gives the csv fingerprint (CRC-32 and size) of the file last
        loaded for each of those users. A member with that same fingerprint holds the same
        bytes, which were valid then and are stored, so it is listed as unchanged instead of
        being read: reloading a mostly unchanged archive then reads only what changed. The
        rules that span members (a user id in two folders, an image without a csv file)
        need the whole archive and are left to the staging that receives the chunks.
        """
        for entries in self.entries(chunk, share):
            judged = Chunk(
                ignored=entries.ignored,
                first=entries.first,
                read=entries.read,
                unpacked=entries.unpacked,
            )
            csv_members = _with_user_ids(entries.csv, judged.refused)
            png_members = _with_user_ids(entries.png, judged.refused)
            stored = known([user_id for user_id, _ in csv_members]) if known else {}
            for user_id, member in csv_members:
                member_print = fingerprint(member)
                if stored.get(user_id) == member_print:
                    judged.unchanged.append((user_id, member.name, member_print))
                    continue
                try:
                    judged.users.append(
                        parse_user_csv(
                            user_id, member.name, self.read(member), now_ms, member_print
                        )
                    )
                except UserFileError as error:
                    judged.failed.append(Rejection(member.name, user_id, str(error)))
            for user_id, member in png_members:
                problem = png_problem(self.read_head(member, PNG_HEAD_BYTES))
                if problem is None:
                    judged.images.append(ImageRef(user_id, member, fingerprint(member)))
                else:
                    judged.not_png.append(Rejection(member.name, user_id, problem))
            self.release()
            yield judged

    def release(self) -> None:
        """Drop the pages read so far from this process's memory (the system still caches
        them), so that memory does not grow with the size of the archive."""
        self._map.madvise(mmap.MADV_DONTNEED)


Named = list[tuple[str, "Member"]]


@dataclass
class Entries:
    """One chunk of the central directory: csv and png members with their stems, and how
    many entries were noise. `first` numbers its first entry (from 0), `read` counts the
    entries read so far, this chunk included, and `unpacked` is what its members unpack
    to, in bytes."""

    csv: Named = field(default_factory=list)
    png: Named = field(default_factory=list)
    ignored: int = 0
    first: int = 0
    read: int = 0
    unpacked: int = 0


def fingerprint(member: Member) -> str:
    """A member's identity from the central directory alone: CRC-32 and size."""
    return "%08x-%d" % (member.crc, member.size)  # noqa: UP031 - faster than an f-string here


def open_archive(path: Path, limits: ArchiveLimits) -> Archive:
    """Open and check an archive; raises ArchiveError for anything that is not a sane zip."""
    return Archive(path, limits)


def _find_directory(data: mmap.mmap) -> tuple[int, int, int]:
    """The member count, where the central directory starts, and the offset shift.

    Data prepended to the archive (a self-extractor stub) shifts every offset by the
    same amount, which the end record reveals.
    """
    tail_start = max(0, len(data) - _END_RECORD.size - _MAX_COMMENT)
    end = data.rfind(_END_SIGNATURE, tail_start)
    if end < 0 or end + _END_RECORD.size > len(data):
        raise ArchiveError("not a zip archive, or a corrupt one: no end of central directory")
    _, disk, _, _, count, cd_size, cd_offset, _ = _END_RECORD.unpack_from(data, end)
    directory_end = end
    if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        count, cd_size, cd_offset, directory_end = _zip64_end_record(data, end)
    if disk != 0:
        raise ArchiveError("multi-part (spanned) zip archives are not supported")
    shift = directory_end - cd_size - cd_offset
    if shift < 0:
        raise ArchiveError("not a zip archive, or a corrupt one: bad central directory offset")
    return count, cd_offset + shift, shift


def _decode_name(raw: bytes, flags: int) -> str:
    try:
        # ASCII names read the same in UTF-8 and in the DOS code page, and the UTF-8
        # decoder is eight times faster, which shows over 200,000 members.
        name = raw.decode("utf-8" if flags & _UTF8_NAMES or raw.isascii() else "cp437")
    except UnicodeDecodeError:
        raise ArchiveError("corrupt zip archive: a member name is not valid UTF-8") from None
    if "\x00" in name:
        # No file system allows it, and PostgreSQL refuses it in text.
        raise ArchiveError(f"corrupt zip archive: the member name {name!r} holds a NUL byte")
    return name


def _zip64_extra(extra: bytes, compressed: int, size: int, offset: int) -> tuple[int, int, int]:
    """The real sizes and offset of a member over 4 GiB, from its ZIP64 extra field.

    The field holds 8-byte values for just the saturated fields, in the order size,
    compressed size, offset.
    """
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == _ZIP64_EXTRA:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            try:
                if size == 0xFFFFFFFF:
                    size = values.pop(0)
                if compressed == 0xFFFFFFFF:
                    compressed = values.pop(0)
                if offset == 0xFFFFFFFF:
                    offset = values.pop(0)
            except IndexError:
                break
            return compressed, size, offset
        at += 4 + length
    raise ArchiveError("corrupt zip archive: a ZIP64 member lacks its extra field")


def check_unpacked_total(total: int, limits: ArchiveLimits) -> None:
    """Refuse an archive whose members unpack to more bytes, together, than the limit."""
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"the archive unpacks to more than {limits.max_total_bytes} bytes, over the limit"
        )


def _check_member_count(count: int, max_members: int) -> None:
    if count > max_members:
        raise ArchiveError(f"the archive has {count} members, over the limit of {max_members}")


def _zip64_end_record(data: mmap.mmap, end: int) -> tuple[int, int, int, int]:
    """Member count, directory size and offset from the ZIP64 record that large archives carry."""
    locator_at = end - _ZIP64_LOCATOR.size
    if locator_at < 0 or data[locator_at : locator_at + 4] != _ZIP64_LOCATOR_SIGNATURE:
        raise ArchiveError("corrupt zip archive: the ZIP64 end record is missing")
    record_at = locator_at - _ZIP64_END_RECORD.size
    if record_at < 0 or data[record_at : record_at + 4] != _ZIP64_END_SIGNATURE:
        raise ArchiveError("corrupt zip archive: the ZIP64 end record is missing")
    record = _ZIP64_END_RECORD.unpack_from(data, record_at)
    return record[7], record[8], record[9], record_at


class UserFileError(ValueError):
    """One user file breaks a rule; the user is rejected and the others still load."""


def _with_user_ids(members: Named, refused: list[Rejection]) -> Named:
    """The members whose stem is a valid user id; the others are refused with the reason."""
    valid: Named = []
    for stem, member in members:
        if USER_ID.fullmatch(stem) is None:
            refused.append(
                Rejection(
                    member.name,
                    None,
                    f"user id {stem!r} is not 1 to {MAX_USER_ID_LENGTH} letters, digits, '-' or '_'",
                )
            )
        else:
            valid.append((stem, member))
    return valid


def parse_user_csv(
    user_id: str, member: str, data: bytes, now_ms: int, csv_fingerprint: str = ""
) -> UserRecord:
    """One user file: a header naming the three columns in any order, and one data row.

    A file in the common shape (the header in its usual order, one unquoted row) is read
    by one pattern; any other file, or a common-shaped one that breaks a rule, goes
    through the full parser, whose messages are the ones users see.
    """
    try:
        # Stripping the BOM by hand keeps the fast built-in UTF-8 decoder (utf-8-sig is not).
        text = (data[3:] if data.startswith(codecs.BOM_UTF8) else data).decode()
    except UnicodeDecodeError as error:
        raise UserFileError(f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    common = _COMMON_FILE.fullmatch(text)
    if common is not None:
        try:
            return _record(user_id, member, *common.groups(), now_ms, csv_fingerprint)
        except UserFileError:
            pass
    return _record(user_id, member, *_fields(text), now_ms, csv_fingerprint)


def _fields(text: str) -> tuple[str, str, str]:
    """The raw first_name, last_name and birthts of any user file the rules accept."""
    rows = [row for row in _split_rows(text) if "".join(row).strip()]
    if not rows:
        raise UserFileError("empty file: no header and no data row")
    first_index, last_index, birth_index = _column_indexes(tuple(rows[0]))
    if len(rows) == 1:
        raise UserFileError("no data row")
    if len(rows) > 2:
        raise UserFileError(f"{len(rows) - 1} data rows, expected one")
    header, row = rows
    if len(row) < len(header):
        raise UserFileError(f"the data row has {len(row)} fields, the header has {len(header)}")
    if len(row) > len(header) and "".join(row[len(header) :]).strip():
        raise UserFileError(
            f"the data row has {len(row)} fields, the header has {len(header)}:"
            " is a name with a comma missing its quotes?"
        )
    return row[first_index], row[last_index], row[birth_index]


def _record(
    user_id: str,
    member: str,
    first: str,
    last: str,
    birth: str,
    now_ms: int,
    csv_fingerprint: str,
) -> UserRecord:
    """A user from the raw fields of their file, every field checked."""
    first_name = _name(first, "first_name")
    last_name = _name(last, "last_name")
    birthts = birth.strip()
    if INTEGER.fullmatch(birthts) is None:
        raise UserFileError(
            f"birthts {_excerpt(birthts)} is not a whole number of milliseconds (up to 19 digits)"
        )
    birth_ms = int(birthts)
    if birth_ms > now_ms:
        raise UserFileError(f"birthts {birth_ms} lies in the future")
    if birth_ms < EARLIEST_BIRTHTS:
        raise UserFileError(f"birthts {birth_ms} lies before 1900")
    return UserRecord(user_id, first_name, last_name, birth_ms, member, csv_fingerprint)


def _name(field: str, column: str) -> str:
    name = field.strip()
    if not name:
        raise UserFileError(f"{column} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UserFileError(f"{column} is {len(name)} characters long, over {MAX_NAME_LENGTH}")
    # isprintable() clears nearly every name at once; it also refuses harmless characters
    # (a no-break space, a zero-width joiner), so for those the pattern decides.
    if not name.isprintable() and CONTROL_CHARACTER.search(name):
        raise UserFileError(f"{column} {_excerpt(name)} holds a control character")
    return name


def _excerpt(value: str) -> str:
    """A value as a rejection message shows it: quoted, and cut short if it is long."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


@functools.lru_cache(maxsize=64)
def _column_indexes(header: tuple[str, ...]) -> tuple[int, int, int]:
    """Where first_name, last_name and birthts stand; cached, as nearly all files share a header."""
    names = [name.strip().casefold() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise UserFileError(f"missing column(s): {', '.join(missing)}")
    first, last, birth = (names.index(name) for name in REQUIRED_COLUMNS)
    return first, last, birth


def _split_rows(text: str) -> list[list[str]]:
    """CSV rows; text without quotes (nearly every file) skips the csv module's overhead."""
    if '"' in text:
        try:
            # newline=None reads CR, LF and CRLF line ends alike, as the branch below does.
            return list(csv.reader(io.StringIO(text, newline=None), skipinitialspace=True))
        except csv.Error as error:
            raise UserFileError(f"not readable as CSV: {error}") from None
    return [line.split(",") for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sIIBBBBBI")  # length, type, width, height, depth, colour, 3 methods, CRC
PNG_HEAD_BYTES = len(PNG_SIGNATURE) + _IHDR.size
# Compressed bytes to read for PNG_HEAD_BYTES unpacked ones: deflate's block header and a
# poorly compressing start need a little more than the bytes they unpack to.
HEAD_SLACK_BYTES = 64
# Bit depths each PNG colour type allows (PNG specification, 11.2.2).
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def png_problem(head: bytes) -> str | None:
    """Why bytes that start like `head` are not a PNG image zipflow can serve, or None.

    Only the signature and the IHDR chunk, which must come first, are checked: cheap, and
    enough to tell a PNG from a renamed JPEG, a text file or a truncated upload.
    """
    if not head.startswith(PNG_SIGNATURE):
        return "not a PNG image: the file does not start with the PNG signature"
    if len(head) < PNG_HEAD_BYTES:
        return "not a readable PNG image: the file ends before its IHDR chunk"
    length, kind, width, height, depth, colour, *_, crc = _IHDR.unpack_from(
        head, len(PNG_SIGNATURE)
    )
    if kind != b"IHDR" or length != 13:
        return "not a readable PNG image: it does not start with an IHDR chunk"
    if zlib.crc32(head[len(PNG_SIGNATURE) + 4 : PNG_HEAD_BYTES - 4]) != crc:
        return "not a readable PNG image: its IHDR chunk is corrupt (CRC-32 does not match)"
    if width == 0 or height == 0:
        return f"not a readable PNG image: it is {width} x {height} pixels"
    if depth not in PNG_DEPTHS.get(colour, ()):
        return f"not a readable PNG image: colour type {colour} with bit depth {depth}"
    return None


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
