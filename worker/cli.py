"""The worker's subcommands: `worker`, `setup`, `upload` and `reprocess`."""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import pika
import pika.exceptions
from minio.error import MinioException
from tqdm import tqdm
from urllib3.exceptions import HTTPError

from shared.cli import quiet_retries
from shared.config import Settings
from shared.logs import configure_logging
from shared.messages import PublishError, publish_reprocess
from shared.models import open_store, queue_run, utcnow
from shared.queries import newest_success
from shared.startup import log_connections
from shared.storage import MinioStore, SourceBucket, ensure_buckets, minio_client, require_minio
from worker import dead_letters
from worker.consumer import Consumer, ProcessorDied
from worker.handler import Handler
from worker.metrics import MetricsUnavailable, WorkerMetrics, check_serving, serve
from worker.topology import TopologyError, declare_topology

log = logging.getLogger("zipflow.worker")

# What the MinIO SDK raises when the endpoint is down or refuses the request.
S3_TROUBLE = (MinioException, HTTPError, OSError)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of `zipflow worker`, shared with `python -m worker`."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if the queue exists and a worker consumes it (and the metrics endpoint, "
        "if configured, answers), 1 if not: a health check",
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker", help="process each zip the moment MinIO announces it on RabbitMQ"
    )
    add_options(worker)
    worker.set_defaults(handler=run_worker)

    setup = subparsers.add_parser(
        "setup", help="create the RabbitMQ exchange and queues and both buckets"
    )
    setup.set_defaults(handler=run_setup)

    upload = subparsers.add_parser("upload", help="put a zip into the source bucket")
    upload.add_argument("file", type=Path, metavar="FILE.zip", help="the zip to upload")
    upload.add_argument("--key", help="object name in the bucket (default: the file's name)")
    upload.set_defaults(handler=run_upload)

    reprocess = subparsers.add_parser(
        "reprocess", help="load a zip again even if it was processed already"
    )
    reprocess.add_argument("--key", help="object name in the bucket (default: the newest zip)")
    reprocess.set_defaults(handler=run_reprocess)

    dead_letters.add_commands(subparsers)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Consume until SIGTERM or Ctrl-C; a second signal abandons the message in hand."""
    if args.check:
        return check_consumed(settings)
    require_minio(settings, "zipflow worker")
    configure_logging(settings.log_format, "%(asctime)s %(levelname)s %(message)s")
    # The worker logs one line per event outcome, carrying the pipeline's counts.
    logging.getLogger("pika").setLevel(logging.WARNING)
    log_connections(log, settings)
    open_store(settings.database_url)
    client = minio_client(settings)
    try:
        ensure_buckets(client, settings)
    except S3_TROUBLE as error:
        log.warning(
            "could not check the buckets at %s, carrying on: %r", settings.s3_endpoint, error
        )
    metrics = WorkerMetrics(settings.reconcile_seconds)
    metrics.loaded_before(newest_success())
    try:
        serve(metrics, settings)
    except MetricsUnavailable as error:
        print(f"zipflow worker: {error}", file=sys.stderr)
        return 1
    handler = Handler(
        settings,
        SourceBucket(client, settings.source_bucket),
        MinioStore(client, settings.processed_bucket),
        metrics,
    )
    consumer = Consumer(settings, handler)

    def on_signal(number: int, frame: FrameType | None) -> None:
        if consumer.stopping.is_set():
            log.info("second %s: abandoning the message in hand", signal.Signals(number).name)
            consumer.abandon()
        else:
            log.info("%s: finishing the message in hand, then exiting", signal.Signals(number).name)
            consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        consumer.run()
    except (TopologyError, ProcessorDied) as error:
        print(f"zipflow worker: {error}", file=sys.stderr)
        return 1
    if consumer.abandoning.is_set():
        # Exit now, as a kill would: the load in hand must not go on to commit behind the
        # message RabbitMQ is about to redeliver. Its transaction rolls back with us.
        log.info("worker stopped; the message in hand goes back to the queue")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    log.info("worker stopped")
    return 0


def check_consumed(settings: Settings) -> int:
    """Whether an upload's event would be taken now: the queue exists and has a consumer."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    except pika.exceptions.AMQPError as error:
        print(f"zipflow worker --check: cannot reach RabbitMQ: {error!r}", file=sys.stderr)
        return 1
    try:
        declared = connection.channel().queue_declare(settings.queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        print(f"zipflow worker --check: queue {settings.queue} does not exist", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    consumers = declared.method.consumer_count
    if consumers == 0:
        print(f"zipflow worker --check: no worker consumes {settings.queue}", file=sys.stderr)
        return 1
    if settings.worker_metrics_port:
        try:
            check_serving(settings)
        except MetricsUnavailable as error:
            print(f"zipflow worker --check: {error}", file=sys.stderr)
            return 1
    print(f"{settings.queue}: {consumers} consumer(s), {declared.method.message_count} waiting")
    return 0


def run_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Make RabbitMQ and MinIO ready, so no upload's event is dropped for want of a queue."""
    require_minio(settings, "zipflow setup")
    quiet_retries()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    except pika.exceptions.AMQPError as error:
        print(
            f"zipflow setup: cannot reach RabbitMQ (ZIPFLOW_AMQP_URL): {error!r}", file=sys.stderr
        )
        return 1
    try:
        declare_topology(connection.channel(), settings)
    except TopologyError as error:
        print(f"zipflow setup: {error}", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    print(
        f"RabbitMQ: exchange {settings.exchange} ({settings.exchange_type}) -> queue "
        f"{settings.queue}, dead letters -> {settings.dead_letter}"
    )
    try:
        ensure_buckets(minio_client(settings), settings)
    except S3_TROUBLE as error:
        print(
            f"zipflow setup: cannot create the buckets at {settings.s3_endpoint}: {error}",
            file=sys.stderr,
        )
        return 1
    print(
        f"MinIO {settings.s3_endpoint}: buckets {settings.source_bucket}, {settings.processed_bucket}"
    )
    return 0


class UploadProgress:
    """A tqdm bar fed by the MinIO SDK's `progress` hooks as the upload reads the file.

    The SDK reports bytes as it reads them, before it sends them, so the bar stops one byte
    short of the end until MinIO confirms the upload (`finish`): a failed upload never
    shows 100%.
    """

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.read = 0

    def set_meta(self, object_name: str, total_length: int) -> None:
        self.bar = tqdm(total=total_length, unit="B", unit_scale=True, desc=object_name)

    def update(self, length: int) -> None:
        self.read += length
        if self.bar is not None:
            self.bar.update(min(self.read, self.bar.total - 1) - self.bar.n)

    def finish(self) -> None:
        """MinIO confirmed the upload: the bar may reach the end."""
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_upload(args: argparse.Namespace, settings: Settings) -> int:
    """Put a zip into the source bucket; MinIO's notification then starts its processing."""
    path: Path = args.file
    key = args.key or path.name
    if not path.is_file():
        print(f"zipflow upload: {path} is not a file", file=sys.stderr)
        return 2
    if not key.lower().endswith(".zip"):
        print(f"zipflow upload: the worker only processes .zip keys, not {key!r}", file=sys.stderr)
        return 2
    require_minio(settings, "zipflow upload")
    quiet_retries()
    source = SourceBucket(minio_client(settings), settings.source_bucket)
    # Before the bar appears: an unreachable MinIO or a missing bucket is one line.
    try:
        exists = source.client.bucket_exists(settings.source_bucket)
    except S3_TROUBLE as error:
        print(
            f"zipflow upload: cannot reach MinIO at {settings.s3_endpoint}: {_one_line(error)}",
            file=sys.stderr,
        )
        return 1
    if not exists:
        print(
            f"zipflow upload: MinIO {settings.s3_endpoint} has no bucket"
            f" {settings.source_bucket}: run zipflow setup first",
            file=sys.stderr,
        )
        return 1
    progress = UploadProgress()
    try:
        with path.open("rb") as stream:
            uploaded = source.upload(stream, key, path.stat().st_size, progress)
        progress.finish()
    except S3_TROUBLE as error:
        print(
            f"zipflow upload: cannot upload to {settings.s3_endpoint}: {_one_line(error)}",
            file=sys.stderr,
        )
        return 1
    finally:
        progress.close()
    print(f"uploaded {uploaded.label} (etag {uploaded.etag})")
    return 0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def run_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    """Queue a run and ask the worker to fill it in, whatever was processed before."""
    require_minio(settings, "zipflow reprocess")
    quiet_retries()
    source = SourceBucket(minio_client(settings), settings.source_bucket)
    try:
        obj = source.stat(args.key) if args.key else source.newest_zip()
    except S3_TROUBLE as error:
        print(f"zipflow reprocess: cannot read {settings.s3_endpoint}: {error}", file=sys.stderr)
        return 1
    if obj is None:
        wanted = repr(args.key) if args.key else "no .zip"
        print(f"zipflow reprocess: {wanted} in bucket {settings.source_bucket}", file=sys.stderr)
        return 1
    open_store(settings.database_url)
    run = queue_run(obj.label, "reprocess")
    try:
        publish_reprocess(settings, run.id, obj.key)
    except PublishError as error:
        run.status, run.error, run.finished_at = "failed", str(error), utcnow()
        run.save()
        print(f"zipflow reprocess: {error}", file=sys.stderr)
        return 1
    print(f"queued run {run.id} for {obj.label}")
    return 0
