"""What a bucket notification means: the S3 `Records` event, as MinIO, Ceph RGW and AWS send it.

Parsing is pure and general: a body is a list of records, each naming one object, with
the fields that may be absent (size of an empty object, etag, sequencer) left optional.
A body that does not have this shape raises `EventError`, and the consumer dead-letters
it at once, because no retry can repair it.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from shared.messages import read_json

# Events that give the object new content. Large uploads produce only
# CompleteMultipartUpload. Retention, legal hold and tagging events are also
# "ObjectCreated" in MinIO but leave the bytes as they were.
CONTENT_EVENTS = frozenset(
    {
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
    }
)


class EventError(ValueError):
    """A message that is not a bucket notification zipflow can read."""


@dataclass(frozen=True)
class ObjectEvent:
    """One record of a notification: something happened to `bucket`/`key`."""

    name: str
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    time: str | None = None

    @property
    def changes_content(self) -> bool:
        # AWS names events "ObjectCreated:Put", MinIO and Ceph "s3:ObjectCreated:Put".
        return self.name.removeprefix("s3:") in CONTENT_EVENTS

    @property
    def label(self) -> str:
        return f"{self.bucket}/{self.key}"


def parse_event(body: bytes) -> list[ObjectEvent]:
    """The records of a notification body, with object keys decoded.

    Keys arrive escaped like Go's `url.QueryEscape` (a space as `+`, `/` as `%2F`),
    so they are decoded with `unquote_plus`.
    """
    try:
        document = read_json(body)
    except ValueError as error:
        raise EventError(f"body is {error}") from None
    if not isinstance(document, dict):
        raise EventError("body is not a JSON object")
    records = document.get("Records")
    if not isinstance(records, list):
        raise EventError('body has no "Records" list')
    return [_parse_record(record, index) for index, record in enumerate(records)]


def _parse_record(record: Any, index: int) -> ObjectEvent:
    where = f"Records[{index}]"
    if not isinstance(record, dict):
        raise EventError(f"{where} is not an object")
    name = record.get("eventName")
    s3 = record.get("s3")
    if not isinstance(name, str) or not name:
        raise EventError(f"{where} has no eventName")
    if not isinstance(s3, dict):
        raise EventError(f"{where} has no s3 object")
    bucket = _field(s3, "bucket", where).get("name")
    obj = _field(s3, "object", where)
    key = obj.get("key")
    if not isinstance(bucket, str) or not bucket:
        raise EventError(f"{where}.s3.bucket has no name")
    if not isinstance(key, str) or not key:
        raise EventError(f"{where}.s3.object has no key")
    etag = obj.get("eTag")
    size = obj.get("size")
    sequencer = obj.get("sequencer")
    time = record.get("eventTime")
    return ObjectEvent(
        name=name,
        bucket=bucket,
        key=unquote_plus(key),
        etag=etag.strip('"') if isinstance(etag, str) and etag else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sequencer=sequencer if isinstance(sequencer, str) else None,
        time=time if isinstance(time, str) else None,
    )


def _field(s3: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = s3.get(name)
    if not isinstance(value, dict):
        raise EventError(f"{where}.s3 has no {name} object")
    return value
