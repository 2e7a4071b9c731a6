"""Reading archives: the input rules of the core issue, one behaviour per test."""

import struct
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from shared.ages import birthdate_of
from shared.archive import (
    ArchiveError,
    Chunk,
    UserFileError,
    now_ms,
    open_archive,
    parse_user_csv,
)
from shared.config import ArchiveLimits
from tests.shared.zips import IVAN, PNG, make_zip

NOW = now_ms()


def read(path: Path, limits: ArchiveLimits | None = None, chunk: int = 50_000) -> Chunk:
    """Every member of the archive judged on its own: the reader's chunks, as one."""
    total = Chunk()
    with open_archive(path, limits or ArchiveLimits()) as archive:
        for part in archive.scan(NOW, chunk=chunk):
            total.users += part.users
            total.unchanged += part.unchanged
            total.failed += part.failed
            total.images += part.images
            total.not_png += part.not_png
            total.refused += part.refused
            total.ignored += part.ignored
            total.read = part.read
    return total


def reasons(contents: Chunk) -> dict[str, str]:
    return {r.member: r.reason for r in contents.failed + contents.not_png + contents.refused}


def test_user_id_is_the_file_name_and_extensions_match_in_any_case(tmp_path):
    contents = read(
        make_zip(tmp_path / "a.zip", {"x/1000.CSV": IVAN, "x/1000.Png": PNG, "abc_D-9.csv": IVAN})
    )
    assert sorted(u.user_id for u in contents.users) == ["1000", "abc_D-9"]
    assert [image.user_id for image in contents.images] == ["1000"]


def test_macos_noise_folders_and_other_files_are_skipped(tmp_path):
    members = {
        "02-src-data/": b"",
        "02-src-data/1000.csv": IVAN,
        "__MACOSX/02-src-data/._1000.csv": b"\x00\x05\x16\x07 not csv",
        "__MACOSX/02-src-data/._1000.png": b"\x00\x05\x16\x07",
        "02-src-data/._1001.csv": b"\x00\x05\x16\x07",
        ".DS_Store": b"Bud1",
        "02-src-data/readme.txt": b"hello",
        "02-src-data/noextension": b"x",
    }
    contents = read(make_zip(tmp_path / "a.zip", members))
    assert [u.user_id for u in contents.users] == ["1000"]
    assert reasons(contents) == {}
    assert contents.ignored == 6


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbffirst_name, last_name, birthts\nIvan, Ivanov, 946674000000\n",
        b"first_name, last_name, birthts\r\nIvan, Ivanov, 946674000000\r\n",
        b"first_name,last_name,birthts\nIvan,Ivanov,946674000000",
        b"\n first_name ,LAST_NAME, BirthTS \n\n  Ivan ,  Ivanov ,946674000000\n\n",
        b"birthts, last_name, first_name\n946674000000, Ivanov, Ivan\n",
        b'"first_name","last_name","birthts"\r\n"Ivan", "Ivanov", "946674000000"\r\n',
    ],
    ids=["bom", "crlf", "no-spaces", "trim-case-blank-lines", "column-order", "quoted"],
)
def test_csv_variants_all_parse_to_the_same_user(data):
    user = parse_user_csv("1000", "1000.csv", data, NOW)
    assert (user.first_name, user.last_name, user.birthts) == ("Ivan", "Ivanov", 946674000000)


def test_quoted_names_keep_their_commas_and_non_ascii_letters():
    data = 'first_name, last_name, birthts\n"Zoë", "Smith, Jr.", -86400000\n'.encode()
    user = parse_user_csv("7", "7.csv", data, NOW)
    assert (user.first_name, user.last_name, user.birthts) == ("Zoë", "Smith, Jr.", -86400000)
    assert str(birthdate_of(user.birthts)) == "1969-12-31"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"first_name, last_name, birthts\n", "no data row"),
        (b"", "empty file"),
        (b"first_name, last_name, birthts\nA, B, 1\nC, D, 2\n", "2 data rows, expected one"),
        (b"first_name, birthts\nA, 1\n", "missing column(s): last_name"),
        (b"first_name, last_name, birthts\nA, B\n", "the data row has 2 fields"),
        (b"first_name, last_name, birthts\nA, B, 12.5\n", "is not a whole number"),
        (b"first_name, last_name, birthts\nA, B, soon\n", "is not a whole number"),
        (b"first_name, last_name, birthts\nA, B, 99999999999999\n", "lies in the future"),
        (b"first_name, last_name, birthts\nA, B, -2208988800001\n", "lies before 1900"),
        (b"first_name, last_name, birthts\n , B, 1\n", "first_name is empty"),
        (b"first_name, last_name, birthts\nA, , 1\n", "last_name is empty"),
        (b"first_name, last_name, birthts\n\xff\xfe, B, 1\n", "not UTF-8"),
        (b"first_name,last_name,birthts\nA,B," + b"9" * 5000 + b"\n", "up to 19 digits"),
        (b"first_name,last_name,birthts\nA\x00,B,1\n", "holds a control character"),
        (b'first_name,last_name,birthts\n"A\x1b[2J",B,1\n', "holds a control character"),
        (b"first_name,last_name,birthts\n" + b"A" * 201 + b",B,1\n", "over 200"),
        (b"birthts,first_name,last_name\n1,Mary,Smith,Jones\n", "a comma missing its quotes"),
        (b'first_name,last_name,birthts\n"' + b"A" * 200_000 + b'",B,1\n', "not readable"),
    ],
)
def test_a_bad_user_file_is_rejected_with_its_reason_and_the_rest_still_load(
    tmp_path, data, reason
):
    contents = read(make_zip(tmp_path / "a.zip", {"d/1.csv": data, "d/2.csv": IVAN}))
    assert [u.user_id for u in contents.users] == ["2"]
    assert reason in reasons(contents)["d/1.csv"]


@pytest.mark.parametrize(
    "data",
    [
        b'first_name,last_name,birthts\r"O\'Neil",B,1\r',
        b'first_name,last_name,birthts\n"O\'Neil",B,1,\n',
    ],
    ids=["quoted with CR line ends", "an empty trailing field"],
)
def test_quoted_files_with_cr_line_ends_or_a_trailing_comma_load(tmp_path, data):
    contents = read(make_zip(tmp_path / "a.zip", {"d/1.csv": data}))
    assert reasons(contents) == {}
    assert [(u.first_name, u.last_name, u.birthts) for u in contents.users] == [("O'Neil", "B", 1)]


def test_user_ids_that_are_not_plain_identifiers_are_rejected(tmp_path):
    contents = read(
        make_zip(tmp_path / "a.zip", {"d/bad id.csv": IVAN, "d/ü.csv": IVAN, "d/ok.csv": IVAN})
    )
    assert [u.user_id for u in contents.users] == ["ok"]
    assert set(reasons(contents)) == {"d/bad id.csv", "d/ü.csv"}
    assert "is not 1 to 64 letters" in reasons(contents)["d/bad id.csv"]


def test_the_image_fingerprint_is_crc_and_size(tmp_path):
    contents = read(make_zip(tmp_path / "a.zip", {"1.csv": IVAN, "1.png": PNG}))
    assert contents.images[0].fingerprint == f"{zipfile.crc32(PNG):08x}-{len(PNG)}"


@pytest.mark.parametrize("data", [b"this is not a zip", b"PK\x03\x04" + b"\x00" * 40, b""])
def test_a_file_that_is_not_a_zip_is_an_archive_error(tmp_path, data):
    path = tmp_path / "bad.zip"
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match=r"not a zip archive|empty"):
        read(path)


def test_a_truncated_zip_is_an_archive_error(tmp_path):
    good = make_zip(tmp_path / "a.zip", {f"{i}.csv": IVAN for i in range(50)}).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError):
        read(path)


def test_a_member_whose_bytes_do_not_match_its_crc_fails_the_archive(tmp_path):
    path = make_zip(tmp_path / "a.zip", {"1.csv": IVAN}, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.index(b"Ivanov")
    data[at : at + 6] = b"Petrov"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="CRC-32"):
        read(path)


def test_an_archive_of_more_than_65535_members_is_read_through_its_zip64_record(tmp_path):
    path = make_zip(
        tmp_path / "big.zip", {f"d/{i}.csv": IVAN for i in range(65_600)}, zipfile.ZIP_STORED
    )
    contents = read(path)
    assert len(contents.users) == 65_600


def with_zip64_sizes(zip_bytes: bytes, name: bytes) -> bytes:
    """The archive with `name`'s central entry moved to ZIP64 size fields, as archivers
    write them for members over 4 GiB: both sizes 0xFFFFFFFF, the real ones in an extra field.
    """
    entry = zip_bytes.rindex(b"PK\x01\x02", 0, zip_bytes.rindex(name))
    compressed, size, name_length, extra_length = struct.unpack_from("<2L2H", zip_bytes, entry + 20)
    extra = struct.pack("<2H2Q", 0x0001, 16, size, compressed)
    patched = (
        zip_bytes[: entry + 20]
        + struct.pack("<2L2H", 0xFFFFFFFF, 0xFFFFFFFF, name_length, extra_length + len(extra))
        + zip_bytes[entry + 32 : entry + 46 + name_length + extra_length]
        + extra
        + zip_bytes[entry + 46 + name_length + extra_length :]
    )
    end = patched.rindex(b"PK\x05\x06")
    (directory_size,) = struct.unpack_from("<L", patched, end + 12)
    return (
        patched[: end + 12] + struct.pack("<L", directory_size + len(extra)) + patched[end + 16 :]
    )


def test_a_member_with_zip64_size_fields_is_read_through_zipfile(tmp_path):
    plain = make_zip(tmp_path / "plain.zip", {"d/1.csv": IVAN, "d/2.csv": IVAN, "d/2.png": PNG})
    path = tmp_path / "zip64.zip"
    path.write_bytes(with_zip64_sizes(plain.read_bytes(), b"d/1.csv"))
    with zipfile.ZipFile(path) as check:
        assert check.getinfo("d/1.csv").file_size == len(IVAN)
    contents = read(path)
    assert sorted(user.user_id for user in contents.users) == ["1", "2"]
    assert [user.last_name for user in contents.users] == ["Ivanov", "Ivanov"]
    assert [image.user_id for image in contents.images] == ["2"]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (ArchiveLimits(max_members=2), "3 members, over the limit of 2"),
        (ArchiveLimits(max_member_bytes=10), "over the limit of 10"),
        (ArchiveLimits(max_total_bytes=100), "unpacks to"),
        (ArchiveLimits(max_archive_bytes=100), "bytes, over the limit of 100"),
    ],
)
def test_archives_over_the_limits_are_refused(tmp_path, limits, message):
    path = make_zip(tmp_path / "a.zip", {"1.csv": IVAN, "2.csv": IVAN, "3.csv": IVAN})
    with pytest.raises(ArchiveError, match=message.replace("(", r"\(")):
        read(path, limits)


def test_the_member_count_is_refused_before_the_directory_is_read(tmp_path):
    """A directory claiming millions of entries is refused from its end record alone."""
    data = bytearray(make_zip(tmp_path / "a.zip", {"1.csv": IVAN}).read_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<2H", data, end + 8, 0xFFFE, 0xFFFE)  # entries on disk, entries
    path = tmp_path / "claims.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="65534 members, over the limit of 10"):
        read(path, ArchiveLimits(max_members=10))


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {"1.csv": IVAN, "2.png": b"\x00" * (8 * 1024 * 1024)})
    with pytest.raises(ArchiveError, match="zip bomb"):
        read(path, replace(ArchiveLimits(), max_ratio=100))


def test_member_names_that_climb_out_of_the_tree_only_yield_a_user_id(tmp_path):
    contents = read(make_zip(tmp_path / "a.zip", {"../../etc/42.csv": IVAN, "/abs/43.csv": IVAN}))
    assert sorted(u.user_id for u in contents.users) == ["42", "43"]
    assert not (tmp_path.parent.parent / "etc" / "42.csv").exists()


def test_members_with_a_known_fingerprint_are_listed_unchanged_and_not_read(tmp_path):
    path = make_zip(tmp_path / "a.zip", {"1.csv": IVAN, "2.csv": IVAN, "3.csv": b"broken"})
    known = {user.user_id: user.csv_fingerprint for user in read(path).users}
    known["3"] = "00000000-6"
    asked = []

    def stored(user_ids: list[str]) -> dict[str, str]:
        asked.extend(user_ids)
        return {user_id: known[user_id] for user_id in user_ids if user_id in known}

    with open_archive(path, ArchiveLimits()) as archive:
        (again,) = archive.scan(NOW, stored)
    assert sorted(asked) == ["1", "2", "3"]
    assert sorted(again.unchanged) == [("1", "1.csv", known["1"]), ("2", "2.csv", known["2"])]
    assert again.users == []
    assert [r.member for r in again.failed] == ["3.csv"]


def test_the_directory_is_read_in_chunks_that_together_hold_every_member(tmp_path):
    members = {f"d/{i}.csv": IVAN for i in range(7)} | {"d/3.png": PNG, "__MACOSX/d/._1.csv": b""}
    path = make_zip(tmp_path / "a.zip", members)
    with open_archive(path, ArchiveLimits()) as archive:
        chunks = list(archive.scan(NOW, chunk=3))
    assert [chunk.read for chunk in chunks] == [3, 6, 9]
    assert sorted(user.user_id for chunk in chunks for user in chunk.users) == [
        str(i) for i in range(7)
    ]
    assert sum(chunk.ignored for chunk in chunks) == 1
    assert read(path, chunk=3).images == read(path).images


def test_a_member_name_with_a_nul_byte_fails_the_archive(tmp_path):
    """zipfile cuts names at a NUL, so the byte is put into the archive by hand."""
    data = make_zip(tmp_path / "a.zip", {"d/1.csv": IVAN, "d/x@y/2.csv": IVAN}).read_bytes()
    path = tmp_path / "nul.zip"
    path.write_bytes(data.replace(b"x@y", b"x\x00y"))
    with pytest.raises(ArchiveError, match="NUL"):
        read(path)


def test_a_common_shaped_file_that_breaks_a_rule_gets_the_full_parser_s_message():
    """The fast path accepts only what the full parser accepts, and never words an error."""
    with pytest.raises(UserFileError, match="no data row"):
        parse_user_csv("1", "1.csv", b"first_name, last_name, birthts\n , , \n", NOW)
    with pytest.raises(UserFileError, match="lies in the future"):
        parse_user_csv("1", "1.csv", b"first_name, last_name, birthts\nA, B, 9999999999999\n", NOW)


def _with_ihdr(width: int = 8, height: int = 8, depth: int = 8, colour: int = 2) -> bytes:
    """PNG with its IHDR replaced (and a correct CRC-32), the rest of the file kept."""
    data = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunk = b"IHDR" + data
    return PNG[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + PNG[33:]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (b"\xff\xd8\xff\xe0 a JPEG renamed", "the file does not start with the PNG signature"),
        (b"", "the file does not start with the PNG signature"),
        (PNG[:20], "the file ends before its IHDR chunk"),
        (PNG[:12] + b"IDAT" + PNG[16:], "it does not start with an IHDR chunk"),
        (
            PNG[:19] + bytes([PNG[19] ^ 1]) + PNG[20:],
            "its IHDR chunk is corrupt (CRC-32 does not match)",
        ),
        (_with_ihdr(width=0), "it is 0 x 8 pixels"),
        (_with_ihdr(depth=3), "colour type 2 with bit depth 3"),
    ],
)
@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_a_png_member_that_is_not_a_png_image_is_rejected_with_the_reason(
    tmp_path, image, reason, compression
):
    contents = read(make_zip(tmp_path / "a.zip", {"d/1.csv": IVAN, "d/1.png": image}, compression))
    assert [u.user_id for u in contents.users] == ["1"]
    assert contents.images == []
    assert reasons(contents)["d/1.png"].endswith(reason)
    assert [rejection.user_id for rejection in contents.not_png] == ["1"]


def test_valid_pngs_of_every_colour_type_pass(tmp_path):
    members = {"d/1.csv": IVAN, "d/1.png": PNG}
    for user_id, (colour, depth) in enumerate([(0, 1), (3, 4), (4, 16), (6, 8)], start=2):
        members[f"d/{user_id}.csv"] = IVAN
        members[f"d/{user_id}.png"] = _with_ihdr(colour=colour, depth=depth)
    contents = read(make_zip(tmp_path / "a.zip", members))
    assert sorted(image.user_id for image in contents.images) == ["1", "2", "3", "4", "5"]
    assert reasons(contents) == {}
