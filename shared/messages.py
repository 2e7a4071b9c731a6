"""The reprocess command: the one message zipflow itself puts on the worker's queue.

MinIO's bucket notifications arrive on the same queue through the events exchange; a
reprocess command is told apart by its AMQP `type` property. The API's POST /data and
`zipflow reprocess` both create a queued run first (`shared.models.queue_run`), then call
`publish_reprocess`, so the worker fills in that run instead of creating one.

The command goes through the default exchange straight to the worker's queue, not through
the events exchange, so that nothing else bound to MinIO's exchange ever sees it.
"""

import json
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from shared.config import Settings

REPROCESS_TYPE = "zipflow.reprocess"


class MessageError(ValueError):
    """A message body that is not a well-formed reprocess command."""


def read_json(body: bytes) -> Any:
    """Untrusted JSON (a MinIO event, a command, a request body), or a ValueError saying why not.

    Besides malformed JSON and UTF-8, json.loads raises ValueError for an integer of more
    than 4,300 digits and RecursionError for deeply nested arrays; all three mean the same
    to a caller, a body it cannot read.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"not JSON zipflow can read: {error}") from None


class PublishError(RuntimeError):
    """The broker did not take the command; the message says what to do about it."""


@dataclass(frozen=True)
class Reprocess:
    """Re-run the pipeline on `key` in the source bucket, filling in the queued run `run_id`."""

    run_id: int
    key: str

    def to_body(self) -> bytes:
        return json.dumps({"command": "reprocess", "run_id": self.run_id, "key": self.key}).encode()

    @classmethod
    def from_body(cls, body: bytes) -> "Reprocess":
        try:
            data = read_json(body)
        except ValueError as error:
            raise MessageError(f"reprocess command is {error}") from None
        if not isinstance(data, dict) or data.get("command") != "reprocess":
            raise MessageError('reprocess command must be an object with "command": "reprocess"')
        run_id, key = data.get("run_id"), data.get("key")
        if not isinstance(run_id, int) or isinstance(run_id, bool) or run_id < 1:
            raise MessageError(f"reprocess command needs a positive integer run_id, not {run_id!r}")
        if not isinstance(key, str) or not key:
            raise MessageError(f"reprocess command needs a non-empty key, not {key!r}")
        return cls(run_id=run_id, key=key)


# A broker that does not complete the handshake within this is as good as down to a caller
# someone is waiting on (POST /data, `zipflow reprocess`, the API's readiness check).
QUICK_BROKER_SECONDS = 1.0


def broker_parameters(url: str, name: str) -> pika.URLParameters:
    """Connection parameters for one short exchange with RabbitMQ that gives up quickly."""
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = QUICK_BROKER_SECONDS
    parameters.stack_timeout = 2 * QUICK_BROKER_SECONDS
    parameters.blocked_connection_timeout = 2 * QUICK_BROKER_SECONDS
    parameters.client_properties = {"connection_name": name}
    return parameters


def publish_reprocess(settings: Settings, run_id: int, key: str) -> None:
    """Put a reprocess command for `key` on the worker's queue and wait for the broker's confirm.

    The publish is mandatory and confirmed, so a missing queue or a broker that refuses the
    message raises `PublishError` here instead of losing the command silently.
    """
    parameters = broker_parameters(settings.amqp_url, "zipflow-reprocess")
    message = Reprocess(run_id=run_id, key=key)
    try:
        connection = pika.BlockingConnection(parameters)
    # Besides AMQPError: OSError for a host name that does not resolve, AMQPConnectorException
    # for a broker that accepts the connection and never completes the handshake.
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as error:
        # The client's own words stay in the cause, for the log.
        raise PublishError(
            f"cannot reach RabbitMQ at {parameters.host}:{parameters.port} (ZIPFLOW_AMQP_URL)"
        ) from error
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange="",
            routing_key=settings.queue,
            body=message.to_body(),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                type=REPROCESS_TYPE,
            ),
            mandatory=True,
        )
    except pika.exceptions.UnroutableError:
        raise PublishError(
            f"queue {settings.queue!r} does not exist: run `zipflow setup` or start the worker"
        ) from None
    except pika.exceptions.AMQPError as error:
        raise PublishError(
            f"RabbitMQ at {parameters.host}:{parameters.port} did not take the reprocess "
            f"command ({type(error).__name__})"
        ) from error
    finally:
        if connection.is_open:
            connection.close()
