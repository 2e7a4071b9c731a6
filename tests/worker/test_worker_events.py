"""Reading bucket notifications: MinIO's exact shape, and the general S3 `Records` layout."""

import json
import re

import pytest
from worker_support import minio_event

from worker.events import EventError, parse_event


def test_key_with_spaces_plus_and_slash_is_decoded() -> None:
    [event] = parse_event(minio_event("source", "drops/02-src-data 2+final.zip"))
    assert event.key == "drops/02-src-data 2+final.zip"
    assert event.bucket == "source"
    assert event.label == "source/drops/02-src-data 2+final.zip"


def test_escaped_key_arrives_as_minio_escapes_it() -> None:
    record = json.loads(minio_event("source", "02-src-data 2.zip"))["Records"][0]
    assert record["s3"]["object"]["key"] == "02-src-data+2.zip"


def test_content_events_change_content_and_metadata_events_do_not() -> None:
    names = {
        "s3:ObjectCreated:Put": True,
        "s3:ObjectCreated:Post": True,
        "s3:ObjectCreated:Copy": True,
        "s3:ObjectCreated:CompleteMultipartUpload": True,
        "ObjectCreated:CompleteMultipartUpload": True,
        "s3:ObjectCreated:PutRetention": False,
        "s3:ObjectCreated:PutLegalHold": False,
        "s3:ObjectCreated:PutTagging": False,
        "s3:ObjectCreated:DeleteTagging": False,
        "s3:ObjectRemoved:Delete": False,
    }
    for name, changes in names.items():
        [event] = parse_event(minio_event("source", "a.zip", name=name))
        assert event.changes_content is changes, name


def test_optional_fields_may_be_absent() -> None:
    [event] = parse_event(minio_event("source", "empty.zip", etag=None, size=None))
    assert event.size is None
    assert event.etag is None


def test_etag_and_size_are_read() -> None:
    [event] = parse_event(minio_event("source", "a.zip", etag='"abc-2"', size=48213))
    assert event.etag == "abc-2"
    assert event.size == 48213
    assert event.time == "2026-09-20T10:15:30.123Z"


def test_several_records_in_one_body() -> None:
    first = json.loads(minio_event("source", "a.zip"))
    second = json.loads(minio_event("source", "b c.zip"))
    first["Records"] += second["Records"]
    events = parse_event(json.dumps(first).encode())
    assert [e.key for e in events] == ["a.zip", "b c.zip"]


def test_no_records_is_an_empty_list() -> None:
    assert parse_event(b'{"Records": []}') == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "maximum recursion depth exceeded"),
        (b'{"Records": [], "n": ' + b"1" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"EventName": "s3:ObjectCreated:Put"}', 'no "Records" list'),
        (b'{"Records": [42]}', "Records[0] is not an object"),
        (b'{"Records": [{"s3": {}}]}', "Records[0] has no eventName"),
        (b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}', "has no s3 object"),
        (
            b'{"Records": [{"eventName": "x", "s3": {"bucket": {"name": "b"}, "object": {}}}]}',
            "s3.object has no key",
        ),
        (
            b'{"Records": [{"eventName": "x", "s3": {"bucket": {}, "object": {"key": "k"}}}]}',
            "s3.bucket has no name",
        ),
    ],
)
def test_malformed_bodies_are_rejected_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(EventError, match=re.escape(message)):
        parse_event(body)
