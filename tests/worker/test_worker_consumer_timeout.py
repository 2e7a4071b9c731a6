"""A delivery RabbitMQ takes back while its load runs, as its consumer timeout does.

RabbitMQ 3.10 (the broker here) has no per-queue consumer timeout (x-consumer-timeout came
in 3.12), and the global one cannot be changed on a shared broker. What the timeout does
is close the consumer's channel with 406 PRECONDITION_FAILED and queue the unacknowledged
message again, marked redelivered. Acknowledging a delivery tag the channel never had gets
exactly that from the broker: the same close, the same requeue. The test does it on the
worker's own channel, from the worker's connection thread, while a load is in progress.
Before the worker watched its channel, it went on serving a connection with no consumer
and never took the message again.
"""

from dataclasses import replace

from test_worker_consumer import finished_runs, queue_depths, user_names
from worker_support import SlowProxy, event_for, wait_for

from shared.demo import write_demo_archive
from shared.models import Run, User
from tests.minio_events import publish_as_minio
from worker.consumer import Consumer


class ChannelRecorder(Consumer):
    """The real consumer, remembering the connection and channel of its last delivery."""

    def _receiver(self, connection, *channels):
        receive = super()._receiver(connection, *channels)

        def record(channel, method, props, body):
            self.last = (connection, channel)
            receive(channel, method, props, body)

        return record


def test_a_delivery_taken_back_mid_load_is_loaded_once(
    tmp_path, settings, minio, broker, start_worker, worker_logs
):
    proxy = SlowProxy(settings.s3_endpoint, delay=0.2)
    try:
        worker = start_worker(
            replace(settings, s3_endpoint=proxy.endpoint), consumer=ChannelRecorder
        )
        path = tmp_path / "a.zip"
        write_demo_archive(path, 100)
        publish_as_minio(broker, settings, event_for(minio, settings, path, "a.zip"))
        wait_for(lambda: Run.get_or_none(Run.status == "running"), what="the load in progress")
        connection, channel = worker.consumer.last
        connection.add_callback_threadsafe(lambda: channel.basic_ack(delivery_tag=999_999))
        wait_for(lambda: "PRECONDITION_FAILED" in worker_logs.text, what="the channel close")
        assert Run.get_or_none(Run.status == "running"), "the load should still be in progress"

        loaded, repeat = finished_runs(2, timeout=60)
        assert loaded.status == "succeeded"
        assert (repeat.status, repeat.note) == (
            "skipped",
            f"already processed by run {loaded.id} (succeeded)",
        )
        assert User.select().count() == 100
        assert "RabbitMQ closed the channel (after its consumer_timeout" in worker_logs.text
        assert "RabbitMQ connection lost before the ack" in worker_logs.text
        worker.stop()
    finally:
        proxy.close()
    assert queue_depths(broker, settings) == (0, 0)
    assert len(user_names()) == 100
