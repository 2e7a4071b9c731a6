"""What MinIO's AMQP target publishes, byte for byte, for the tests to publish in its place.

Read from MinIO's source at the release compose pins (RELEASE.2025-09-07T16-13-09Z):
`internal/event/target/amqp.go` (send), `internal/event/event.go` (the structs and their
JSON tags), `cmd/event-notification.go` (ToEvent). One event per message:

- the body is Go's `json.Marshal` of `event.Log{EventName, Key, Records: [one event]}`:
  compact, fields in struct order, map keys sorted, non-ASCII as raw UTF-8, and `<`, `>`,
  `&`, U+2028 and U+2029 escaped as `\\u003c`... (Go's HTML-safe encoding);
- `Key` is `<bucket>/<key>` unescaped; `s3.object.key` is `url.QueryEscape(key)`;
- `size`, `eTag`, `contentType`, `userMetadata` and `versionId` are omitted when empty;
  `sequencer` is always there: the object's modification time in nanoseconds, `%X`;
- `eventTime` is the time of the event (not of the object), with milliseconds;
- the message goes to the configured exchange with the configured routing key (empty by
  default), `content_type` `application/json`, the configured delivery mode, and the headers
  `minio-bucket` and `minio-event`; no type, message id or timestamp. MinIO declares the
  exchange with its configured type and durability before every publish.
"""

import json
from datetime import UTC, datetime
from urllib.parse import quote_plus

import pika
from pika.adapters.blocking_connection import BlockingChannel

from shared.config import Settings

# Every name `mc event add --event put` subscribes to (s3:ObjectCreated:* in name.go).
CONTENT_NAMES = (
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
)
METADATA_NAMES = (
    "s3:ObjectCreated:PutRetention",
    "s3:ObjectCreated:PutLegalHold",
    "s3:ObjectCreated:PutTagging",
    "s3:ObjectCreated:DeleteTagging",
)
ACCESS_KEY = "zipflow"
# Go's json.Marshal escapes these even inside strings; nothing else.
GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def sequencer(modified: datetime, nanoseconds: int = 0) -> str:
    """MinIO's sequencer for an object modified at `modified` (naive UTC or aware).

    `nanoseconds` adds what lies below the microseconds a datetime holds.
    """
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = modified - epoch
    total = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return f"{total + nanoseconds:X}"


def go_json(document: object) -> bytes:
    """`document` encoded as Go's encoding/json.Marshal encodes it."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    for char, escape in GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode()


def minio_body(
    bucket: str,
    key: str,
    etag: str | None,
    size: int,
    modified: datetime,
    name: str = "s3:ObjectCreated:Put",
    event_time: datetime | None = None,
    version_id: str = "",
    nanoseconds: int = 0,
) -> bytes:
    """The body MinIO publishes for one event on `bucket`/`key`."""
    moment = (event_time or datetime.now(UTC)).astimezone(UTC)
    obj: dict[str, object] = {"key": quote_plus(key, safe="")}
    if size:
        obj["size"] = size
    if etag:
        obj["eTag"] = etag
    obj["contentType"] = "application/zip"
    obj["userMetadata"] = {"content-type": "application/zip"}
    if version_id:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer(modified, nanoseconds)
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "eventName": name,
        "userIdentity": {"principalId": ACCESS_KEY},
        "requestParameters": {
            "principalId": ACCESS_KEY,
            "region": "",
            "sourceIPAddress": "172.18.0.1",
        },
        "responseElements": {
            "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
            "x-amz-request-id": "1862A5B7E2C4D9F0",
            "x-minio-deployment-id": "6a3b7a0c-29f3-4b8e-9a76-1f3c2d4e5f60",
            "x-minio-origin-endpoint": "http://172.18.0.3:9000",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": ACCESS_KEY},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        "source": {
            "host": "172.18.0.1",
            "port": "",
            "userAgent": "MinIO (linux; amd64) minio-go/v7.0.90",
        },
    }
    return go_json({"EventName": name, "Key": f"{bucket}/{key}", "Records": [record]})


def publish_as_minio(
    channel: BlockingChannel,
    settings: Settings,
    body: bytes,
    routing_key: str | None = None,
    delivery_mode: int = 2,
) -> None:
    """Publish `body` as MinIO's AMQP target configured to match `settings` does.

    `routing_key` defaults to the one zipflow binds with (MINIO_NOTIFY_AMQP_ROUTING_KEY).
    """
    record = json.loads(body)["Records"][0]
    channel.exchange_declare(
        settings.exchange,
        exchange_type=settings.exchange_type,
        durable=settings.exchange_durable,
    )
    channel.basic_publish(
        exchange=settings.exchange,
        routing_key=settings.routing_key if routing_key is None else routing_key,
        body=body,
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=delivery_mode,
            headers={
                "minio-bucket": record["s3"]["bucket"]["name"],
                "minio-event": record["eventName"],
            },
        ),
    )
