"""The listings' hand-written JSON is, byte for byte, json.dumps of `user_json`."""

import json
from datetime import date

from api.resources import STREAM_CHUNK_ROWS, json_stream, user_json
from shared.ages import ymd

TODAY = date(2028, 2, 29)
TRICKY_NAMES = ('Zoë "Z"', "back\\slash", "O'Brien, Jr.", "山田", "tab\tand\u2028line", "😀")


def rows(count: int) -> list[tuple]:
    births = (20040229, 20000301, 19000101, 20280229, 19991231)
    return [
        (
            str(number),
            TRICKY_NAMES[number % len(TRICKY_NAMES)],
            TRICKY_NAMES[(number + 1) % len(TRICKY_NAMES)],
            -2_208_988_800_000 + number,
            births[number % len(births)],
            None if number % 3 else f"images/{number}.png",
        )
        for number in range(count)
    ]


def test_the_listing_is_json_dumps_of_user_json_over_several_chunks() -> None:
    users = rows(2 * STREAM_CHUNK_ROWS + 7)
    body = b"".join(json_stream(users, TODAY))
    expected = json.dumps([user_json(row, ymd(TODAY)) for row in users], ensure_ascii=False)
    assert body.decode() == expected
    assert json.loads(body)[0]["birthdate"] == "2004-02-29"


def test_an_empty_listing_is_an_empty_array() -> None:
    assert b"".join(json_stream([], TODAY)) == b"[]"
