"""The RabbitMQ side of the worker: consume, acknowledge, retry, reconnect, stop.

Two threads. The connection thread (the caller of `Consumer.run`) owns the pika
connection and does nothing but service it, because a BlockingConnection only answers
heartbeats inside its own loop. The processing thread runs the handler, one message at a
time (prefetch 1), and settles each message through `connection.add_callback_threadsafe`,
so a zip that takes minutes never gets the connection dropped.

The queue has a single active consumer (see `worker.topology`), so however many worker
replicas run, one loads and the others stand by. The reconcile sweep follows the same
path: at start and every `reconcile_seconds` the connection thread puts a sweep request
on the queue, so sweeps run in the active worker, in turn with the loads, never beside
them.

A message is acknowledged only after the handler returned, that is after the store commit
and the uploads. Counting deliveries relies on the quorum queue's `x-delivery-count`
(see `worker.topology`): a transient failure is nacked back to the queue after a backoff,
and the delivery that reaches `max_deliveries` is dead-lettered with the reason logged.
A message that arrives more often than that without ever reaching an outcome (the worker
crashed or lost its connection each time) is dead-lettered before it is tried again.
If the connection is lost before a settlement, RabbitMQ redelivers the message and the
handler's idempotency check turns the repeat into a recorded skip.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from shared.config import Settings
from shared.db import database
from shared.messages import MessageError
from worker.dead_letters import REPLAYED_HEADER, failure_reason, publish_dead_letter
from worker.events import EventError
from worker.handler import RECONCILE_TYPE, Handler, describe
from worker.topology import declare_topology

log = logging.getLogger("zipflow.worker")

SERVICE_SECONDS = 0.2


class ChannelLost(pika.exceptions.AMQPError):
    """RabbitMQ closed the consuming channel but not the connection.

    Its consumer timeout does this to a delivery left unacknowledged too long, and queues
    the message again; the worker must consume on a new channel or it waits for ever.
    """

    def __repr__(self) -> str:
        return f"ChannelLost: {self.args[0]}"


class ProcessorDied(RuntimeError):
    """The processing thread ended while the worker was still consuming."""


@dataclass(frozen=True)
class Backoff:
    """Delays that double from `first` up to `cap` seconds."""

    first: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Delivery:
    """One message in hand, with what is needed to settle it from another thread."""

    connection: pika.BlockingConnection
    channel: BlockingChannel
    tag: int
    body: bytes
    kind: str | None
    redelivered: bool
    attempt: int
    properties: BasicProperties
    # In confirm mode: dead letters are published there before the original is acked.
    dead_letters: BlockingChannel


class Consumer:
    """Consumes the work queue until `stop()`; reconnects whenever the broker goes away."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        retry: Backoff = Backoff(),
        reconnect: Backoff = Backoff(first=0.5, cap=15.0),
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.retry = retry
        self.reconnect = reconnect
        self.max_deliveries = max(1, settings.max_deliveries)
        self.parameters = pika.URLParameters(settings.amqp_url)
        self.parameters.client_properties = {"connection_name": f"zipflow-worker {settings.queue}"}
        self.tasks: queue.Queue[Delivery | None] = queue.Queue()
        self.stopping = threading.Event()
        self.abandoning = threading.Event()
        self.consuming = threading.Event()
        self.failures = 0  # connection attempts failed in a row, for the reconnect backoff
        self.processor = threading.Thread(target=self._process, name="processor", daemon=True)

    def stop(self) -> None:
        """Take no more messages; finish the one in hand, then return from `run`."""
        self.stopping.set()

    def abandon(self) -> None:
        """Return from `run` at once, leaving the message in hand unacknowledged for redelivery."""
        self.stopping.set()
        self.abandoning.set()

    def run(self) -> None:
        """Serve the connection until stopped, reconnecting with backoff when it is lost."""
        self.processor.start()
        while not self.stopping.is_set():
            try:
                self._serve()
            except pika.exceptions.AMQPError as error:
                # Deliveries not started yet come again on the next connection.
                self._drop_waiting()
                self.failures += 1
                delay = self.reconnect.delay(self.failures)
                log.warning(
                    "RabbitMQ connection lost or refused (%r); reconnecting in %.1fs", error, delay
                )
                self.stopping.wait(delay)
        self._drop_waiting()
        self.tasks.put(None)
        if not self.abandoning.is_set():
            self.processor.join()

    def _serve(self) -> None:
        connection = pika.BlockingConnection(self.parameters)
        try:
            channel = connection.channel()
            declare_topology(channel, self.settings)
            channel.basic_qos(prefetch_count=1)
            dead_letters = connection.channel()
            dead_letters.confirm_delivery()
            receiver = self._receiver(connection, dead_letters)
            tag = channel.basic_consume(self.settings.queue, receiver)
            self.consuming.set()
            self.failures = 0
            log.info("consuming %s (exchange %s)", self.settings.queue, self.settings.exchange)
            sweep_every = self.settings.reconcile_seconds
            next_sweep = time.monotonic() if sweep_every else None
            while not self.stopping.is_set():
                if next_sweep is not None and time.monotonic() >= next_sweep:
                    self._request_sweep(channel)
                    next_sweep = time.monotonic() + sweep_every
                connection.process_data_events(time_limit=SERVICE_SECONDS)
                if channel.is_closed:
                    raise ChannelLost(
                        "RabbitMQ closed the channel (after its consumer_timeout, for one): "
                        "the message in hand comes back, and is recognised once loaded"
                    )
                if not self.processor.is_alive():
                    # Consuming without processing would hold a message forever: exit, so
                    # the supervisor restarts the worker and RabbitMQ redelivers.
                    raise ProcessorDied("the processing thread stopped; see the error above")
            channel.basic_cancel(tag)
            self.consuming.clear()
            self._drop_waiting()
            self.tasks.put(None)
            # Keep servicing the connection so the message in hand can still be settled.
            while self.processor.is_alive() and not self.abandoning.is_set():
                connection.process_data_events(time_limit=SERVICE_SECONDS)
        finally:
            self.consuming.clear()
            self.handler.metrics.active.set(0)
            if connection.is_open:
                connection.close()

    def _receiver(
        self, connection: pika.BlockingConnection, dead_letters: BlockingChannel
    ) -> Callable[[BlockingChannel, Basic.Deliver, BasicProperties, bytes], None]:
        def receive(
            channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
        ) -> None:
            # Only the single active consumer is handed messages.
            self.handler.metrics.active.set(1)
            headers = props.headers or {}
            count = headers.get("x-delivery-count", 0)
            self.tasks.put(
                Delivery(
                    connection=connection,
                    channel=channel,
                    tag=method.delivery_tag,
                    body=body,
                    kind=props.type,
                    redelivered=bool(method.redelivered or count or headers.get(REPLAYED_HEADER)),
                    attempt=int(count) + 1,
                    properties=props,
                    dead_letters=dead_letters,
                )
            )

        return receive

    def _drop_waiting(self) -> None:
        """Forget deliveries not started yet: unacknowledged, they return to the queue."""
        while True:
            try:
                self.tasks.get_nowait()
            except queue.Empty:
                return

    def _request_sweep(self, channel: BlockingChannel) -> None:
        channel.basic_publish(
            "",
            self.settings.queue,
            b"{}",
            pika.BasicProperties(type=RECONCILE_TYPE, delivery_mode=pika.DeliveryMode.Persistent),
        )

    def _process(self) -> None:
        while True:
            delivery = self.tasks.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            except Exception:
                log.exception("unexpected error while settling a message; stopping")
                raise
            finally:
                database.close()

    def _deliver(self, delivery: Delivery) -> None:
        if delivery.attempt > self.max_deliveries:
            # The body is not read here: reading it may be what stopped the worker each time.
            reason = (
                f"delivered {delivery.attempt - 1} times without an outcome "
                "(the worker stopped or lost its connection each time)"
            )
            log.error(
                "message of type %s, %d bytes -> dead-lettered: %s",
                delivery.kind or "event",
                len(delivery.body),
                reason,
            )
            self._dead_letter(delivery, reason)
            return
        what = describe(delivery.body, delivery.kind)
        try:
            outcome = self.handler.handle(delivery.body, delivery.kind, delivery.redelivered)
        except (EventError, MessageError) as error:
            log.error("%s -> dead-lettered: malformed: %s", what, error)
            self._dead_letter(delivery, f"malformed: {error}")
            return
        except Exception as error:
            if delivery.attempt >= self.max_deliveries:
                log.error(
                    "%s -> dead-lettered after %d deliveries: %r",
                    what,
                    delivery.attempt,
                    error,
                )
                tries = (
                    f"each of {delivery.attempt} deliveries"
                    if delivery.attempt > 1
                    else "its one delivery"
                )
                self._dead_letter(delivery, f"failed on {tries}: {failure_reason(error)}")
                return
            delay = self.retry.delay(delivery.attempt)
            log.warning(
                "%s -> failed (delivery %d of %d), retrying in %.1fs: %r",
                what,
                delivery.attempt,
                self.max_deliveries,
                delay,
                error,
            )
            self.stopping.wait(delay)
            self._count(delivery, "failed")
            self._settle(delivery, "requeue")
            return
        self._count(delivery, outcome)
        self._settle(delivery, "ack")

    def _count(self, delivery: Delivery, outcome: str) -> None:
        """Count the message's outcome; sweeps are the worker's own, not messages to count."""
        if delivery.kind != RECONCILE_TYPE:
            self.handler.metrics.event(outcome)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._count(delivery, "dead_lettered")
        self._settle(delivery, "dead-letter", reason)

    def _settle(self, delivery: Delivery, action: str, reason: str = "") -> None:
        """Ack, requeue or dead-letter on the connection thread, the only one that may.

        A dead letter is published with its reason, confirmed, and only then the original
        acked; if that publish fails, RabbitMQ dead-letters it itself (without the reason).
        """

        def settle() -> None:
            if not delivery.channel.is_open:
                log.warning("channel closed before the %s; RabbitMQ redelivers", action)
                return
            if action == "dead-letter":
                try:
                    publish_dead_letter(
                        delivery.dead_letters,
                        self.settings,
                        delivery.properties,
                        delivery.body,
                        reason,
                        delivery.attempt,
                    )
                except pika.exceptions.AMQPError as error:
                    log.warning("could not publish the dead letter (%r); rejecting it", error)
                    delivery.channel.basic_nack(delivery.tag, requeue=False)
                    return
                delivery.channel.basic_ack(delivery.tag)
            elif action == "ack":
                delivery.channel.basic_ack(delivery.tag)
            else:
                delivery.channel.basic_nack(delivery.tag, requeue=True)

        try:
            delivery.connection.add_callback_threadsafe(settle)
        except pika.exceptions.AMQPError:
            log.warning("RabbitMQ connection lost before the %s; it redelivers the message", action)
