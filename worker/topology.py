"""The exchanges and queues the worker consumes from, declared the same way by everyone.

MinIO declares the events exchange on every publish with its own configured type and
durability, and RabbitMQ refuses a redeclaration that differs (PRECONDITION_FAILED), so
the exchange is declared exactly as MinIO does: fanout and durable unless configured
otherwise. RabbitMQ drops a publish to an exchange with no bound queue, so the queue must
exist before the first upload: `zipflow setup` and the worker's start both declare all of
this, idempotently.

MinIO publishes with its configured routing key, empty by default, and the queue is bound
with `routing_key`, the same key: a fanout exchange ignores it, a direct exchange routes on
an exact match, a topic exchange on a match of the key as a pattern (a key without `*` or
`#` matches only itself). A message no binding matches is dropped by RabbitMQ, and MinIO
counts it as delivered, so both sides must name the same key.

The work queue is a quorum queue because it counts deliveries itself: every redelivery,
after a nack or after a consumer died holding the message, raises its `x-delivery-count`
header. A classic queue only says "redelivered", which cannot bound retries of a message
that crashes the worker.

It also has a single active consumer: loads into one store must not overlap (a snapshot
decides "newest wins" against the last load), so extra worker replicas stand by and
RabbitMQ hands the queue to one of them when the active one goes away.
"""

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from shared.config import Settings

PRECONDITION_FAILED = 406


class TopologyError(RuntimeError):
    """RabbitMQ holds an exchange or queue of the same name declared differently."""


def declare_topology(channel: BlockingChannel, settings: Settings) -> None:
    """Declare the events exchange, the work queue bound to it, and the dead-letter pair."""
    try:
        channel.exchange_declare(
            settings.exchange,
            exchange_type=settings.exchange_type,
            durable=settings.exchange_durable,
        )
        channel.exchange_declare(settings.dead_letter, exchange_type="fanout", durable=True)
        channel.queue_declare(settings.dead_letter, durable=True)
        channel.queue_bind(settings.dead_letter, settings.dead_letter)
        channel.queue_declare(
            settings.queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": settings.dead_letter,
                "x-single-active-consumer": True,
            },
        )
        channel.queue_bind(settings.queue, settings.exchange, routing_key=settings.routing_key)
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code != PRECONDITION_FAILED:
            raise
        raise TopologyError(
            f"RabbitMQ already has {error.reply_text}. The events exchange must match MinIO's "
            "notification target (ZIPFLOW_EXCHANGE_TYPE, ZIPFLOW_EXCHANGE_DURABLE); the queues "
            "must be deleted and declared again if their arguments changed."
        ) from None
