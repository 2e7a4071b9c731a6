"""Dead letters: the messages the worker gave up on, each carrying why, listed and replayed.

The worker does not leave dead-lettering to RabbitMQ (a nack would record only "rejected"):
it publishes the message to the dead-letter exchange itself, with the reason in the
`x-zipflow-error` header (so RabbitMQ's management UI shows it), the time and the number of
deliveries, waits for the broker's confirm, and only then acknowledges the original.

`zipflow dead-letters` lists them; `--replay` puts them back on the work queue once the
cause is fixed. A replay publishes each copy with confirms before acknowledging the dead
letter, so an interrupted replay loses nothing: at worst a message is on both queues, and
the worker's idempotency check skips the second one.
"""

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
import pika.exceptions
from minio.error import S3Error
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties

from shared.config import Settings
from shared.messages import REPROCESS_TYPE, Reprocess
from shared.models import utcnow
from worker.events import parse_event
from worker.handler import RECONCILE_TYPE

ERROR_HEADER = "x-zipflow-error"
WHEN_HEADER = "x-zipflow-dead-lettered-at"
DELIVERIES_HEADER = "x-zipflow-deliveries"
# A replayed message is handled as a redelivery: a reprocess command whose run failed for a
# transient reason is then tried again instead of skipped as "already failed".
REPLAYED_HEADER = "x-zipflow-replayed"
MAX_REASON_CHARACTERS = 1000
# Headers RabbitMQ and zipflow add along the way, dropped from every copy.
SPENT_HEADERS = ("x-delivery-count", "x-death", "x-first-death", "x-last-death", "x-zipflow-")


def _fresh_headers(properties: BasicProperties) -> dict[str, object]:
    return {
        name: value
        for name, value in (properties.headers or {}).items()
        if not name.startswith(SPENT_HEADERS)
    }


def _copy(properties: BasicProperties, headers: dict[str, object]) -> BasicProperties:
    return BasicProperties(
        content_type=properties.content_type,
        type=properties.type,
        message_id=properties.message_id,
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=headers,
    )


def publish_dead_letter(
    channel: BlockingChannel,
    settings: Settings,
    properties: BasicProperties,
    body: bytes,
    reason: str,
    deliveries: int,
) -> None:
    """Put the message on the dead-letter exchange with its reason; `channel` is in confirm
    mode, so this returns only once RabbitMQ has it (and raises if it refused it)."""
    headers = _fresh_headers(properties) | {
        ERROR_HEADER: " ".join(reason.split())[:MAX_REASON_CHARACTERS],
        WHEN_HEADER: utcnow().isoformat(timespec="seconds") + "Z",
        DELIVERIES_HEADER: deliveries,
    }
    channel.basic_publish(
        settings.dead_letter,
        settings.queue,
        body,
        _copy(properties, headers),
        mandatory=True,
    )


def failure_reason(error: BaseException) -> str:
    """An error in words for the header: S3's code and message rather than the SDK's repr."""
    if isinstance(error, S3Error):
        where = f" (bucket {error.bucket_name})" if error.bucket_name else ""
        return f"S3 {error.code}: {error.message}{where}"
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class DeadLetter:
    """What `zipflow dead-letters` shows of one message."""

    key: str
    reason: str
    when: str
    deliveries: int


def describe_dead_letter(properties: BasicProperties, body: bytes) -> DeadLetter:
    """The message's object key, why it was dead-lettered, when, and after how many deliveries.

    Messages RabbitMQ dead-lettered itself carry only its `x-death` record; those are shown
    with its reason ("rejected", "delivery_limit") and count.
    """
    headers = properties.headers or {}
    if ERROR_HEADER in headers:
        reason = str(headers[ERROR_HEADER])
        when = str(headers.get(WHEN_HEADER, "?"))
        deliveries = int(headers.get(DELIVERIES_HEADER, 0))
    else:
        death = (headers.get("x-death") or [{}])[0]
        reason = f"dead-lettered by RabbitMQ: {death.get('reason', 'unknown reason')}"
        when = str(death.get("time", "?"))
        deliveries = int(death.get("count", 0))
    keys = object_keys(properties.type, body)
    return DeadLetter(", ".join(keys) or "(no object)", reason, when, deliveries)


def object_keys(kind: str | None, body: bytes) -> list[str]:
    """The source-bucket keys a message is about; none for a sweep or an unreadable body."""
    try:
        if kind == RECONCILE_TYPE:
            return []
        if kind == REPROCESS_TYPE:
            return [Reprocess.from_body(body).key]
        return [event.key for event in parse_event(body)]
    except Exception:
        return []


@contextmanager
def _channel(settings: Settings) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        yield channel
    finally:
        if connection.is_open:
            connection.close()  # messages taken and not acknowledged go back, in order


def _waiting(channel: BlockingChannel, settings: Settings) -> int:
    return channel.queue_declare(settings.dead_letter, passive=True).method.message_count


def list_dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every message waiting in the dead-letter queue, left where it is.

    RabbitMQ cannot show a message without delivering it: each is taken, not acknowledged,
    and returned when the connection closes.
    """
    with _channel(settings) as channel:
        found = []
        for _ in range(_waiting(channel, settings)):
            method, properties, body = channel.basic_get(settings.dead_letter)
            if method is None:
                break
            found.append(describe_dead_letter(properties, body))
        return found


def replay(settings: Settings, key: str | None = None) -> int:
    """Move the dead letters (those of object `key`, if given) back to the work queue.

    Only the messages waiting when it starts are looked at, so a message that fails again
    and comes back meanwhile is not replayed twice.
    """
    replayed = 0
    with _channel(settings) as channel:
        channel.confirm_delivery()
        for _ in range(_waiting(channel, settings)):
            method, properties, body = channel.basic_get(settings.dead_letter)
            if method is None:
                break
            if key is not None and key not in object_keys(properties.type, body):
                continue  # left unacknowledged: back in the queue when the connection closes
            headers = _fresh_headers(properties) | {REPLAYED_HEADER: True}
            channel.basic_publish(
                "", settings.queue, body, _copy(properties, headers), mandatory=True
            )
            channel.basic_ack(method.delivery_tag)
            replayed += 1
    return replayed


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dead-letters",
        help="list the messages the worker gave up on, with why; --replay puts them back",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="put them back on the work queue (once the cause is fixed)",
    )
    parser.add_argument("--key", help="with --replay: only the dead letters of this object key")
    parser.set_defaults(handler=run_dead_letters)


def run_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    if args.key and not args.replay:
        print("zipflow dead-letters: --key goes with --replay", file=sys.stderr)
        return 2
    try:
        if args.replay:
            count = replay(settings, args.key)
            print(
                f"replayed {count} dead letter(s) from {settings.dead_letter} to {settings.queue}"
            )
            return 0
        letters = list_dead_letters(settings)
    except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.UnroutableError):
        print(
            f"zipflow dead-letters: queue {settings.dead_letter} or {settings.queue} does not "
            "exist: run `zipflow setup` or start the worker",
            file=sys.stderr,
        )
        return 1
    except pika.exceptions.AMQPError as error:
        print(
            f"zipflow dead-letters: cannot reach RabbitMQ (ZIPFLOW_AMQP_URL): {type(error).__name__}",
            file=sys.stderr,
        )
        return 1
    for letter in letters:
        deliveries = f"{letter.deliveries} deliver{'y' if letter.deliveries == 1 else 'ies'}"
        print(f"{letter.key}\t{letter.when}\t{deliveries}\t{letter.reason}")
    print(f"{len(letters)} dead letter(s) in {settings.dead_letter}")
    return 0
