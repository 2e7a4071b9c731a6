"""Latency from a MinIO event's publication to the new data being visible in the store.

    python bench/worker_latency.py [--runs 15] [--large-users 10000]

Runs `python -m worker` as its own process, as deployed, on the local RabbitMQ
(127.0.0.1:5672, unique queue names) and a fresh SQLite store. MinIO cannot run here:
the S3 endpoint is moto's server (in this process), which takes a few milliseconds per
PUT where MinIO takes well under one, so every figure that includes image uploads is an
upper bound for MinIO.

For each run a new 100-user demo archive (different content each time) is uploaded first,
untimed; the clock starts when the event MinIO would send is published and stops when
this process sees the archive's rows committed in the store. The series with images
(90% of users have a png, all uploaded before the commit) is bound by moto's PUTs; the
series without shows the worker's own path: event, stat, download, read, load.
Then one 10,000-user archive with images, timed the same way.
"""

import argparse
import io
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote_plus

import pika
from minio import Minio
from moto.server import ThreadedMotoServer
from pipeline_bench import cpu_model  # bench/, beside this script

from shared.config import Settings
from shared.db import open_database
from shared.demo import write_demo_archive
from shared.models import Run, create_schema
from shared.storage import ensure_buckets, minio_client

AMQP_URL = os.environ.get("ZIPFLOW_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POLL_SECONDS = 0.002


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="100-user archives to time")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--large-users", type=int, default=10_000, help="0 skips the large archive")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    name = f"zfbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            database_url=f"sqlite:///{scratch}/bench.db",
            data_dir=Path(scratch) / "data",
            s3_endpoint=f"{host}:{port}",
            s3_access_key="bench",
            s3_secret_key="bench-secret",  # noqa: S106 (moto accepts any key)
            source_bucket=f"{name}-source",
            processed_bucket=f"{name}-processed",
            amqp_url=AMQP_URL,
            exchange=f"{name}.events",
            queue=f"{name}.objects",
            dead_letter=f"{name}.dead",
            reconcile_seconds=0,
        )
        open_database(settings.database_url)
        create_schema()
        client = minio_client(settings)
        ensure_buckets(client, settings)
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        worker = start_worker(settings, Path(scratch) / "worker.log")
        try:
            put_seconds = put_cost(client, settings)
            print_header(args, settings, put_seconds)
            for images in (True, False):
                latencies = [
                    timed_load(settings, client, channel, Path(scratch), args.users, images, seed)
                    for seed in range(args.runs + 1)
                ][1:]  # the first load warms the worker's connections and caches
                print(
                    f"{args.users}-user zip {'with' if images else 'without'} images, event published "
                    f"-> rows visible, {args.runs} runs: median {ms(statistics.median(latencies))}, "
                    f"min {ms(min(latencies))}, max {ms(max(latencies))}"
                )
            if args.large_users:
                seconds = timed_load(
                    settings, client, channel, Path(scratch), args.large_users, True, seed=999
                )
                run = Run.select().order_by(Run.id.desc()).get()
                while run.status == "running":
                    time.sleep(0.05)
                    run = Run.get_by_id(run.id)
                print(
                    f"{args.large_users}-user zip with {run.images_uploaded} images: "
                    f"event published -> rows visible {seconds:.2f}s; run {run.status} in "
                    f"{run.duration_seconds:.2f}s including output.csv; moto's {run.images_uploaded} "
                    f"PUTs alone take about {run.images_uploaded * put_seconds:.0f}s here"
                )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            for queue in (settings.queue, settings.dead_letter):
                channel.queue_delete(queue)
            for exchange in (settings.exchange, settings.dead_letter):
                channel.exchange_delete(exchange)
            connection.close()
            moto.stop()


def put_cost(client: Minio, settings: Settings) -> float:
    """Seconds moto takes for one small PUT here, to set the image-heavy figures in scale."""
    started = time.perf_counter()
    for index in range(50):
        client.put_object(settings.processed_bucket, f"probe/{index}", io.BytesIO(b"x" * 300), 300)
    return (time.perf_counter() - started) / 50


def print_header(args: argparse.Namespace, settings: Settings, put_seconds: float) -> None:
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}; "
        f"store SQLite; broker RabbitMQ {AMQP_URL.split('@')[-1]}"
    )
    print(
        f"S3: moto server standing in for MinIO, {ms(put_seconds)} per small PUT measured here "
        f"(one process, so parallel PUTs barely overlap; MinIO is far faster), "
        f"{settings.image_upload_threads} upload threads"
    )


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIPFLOW_")}
    env.update(
        {
            "ZIPFLOW_DATABASE_URL": settings.database_url,
            "ZIPFLOW_DATA_DIR": str(settings.data_dir),
            "ZIPFLOW_S3_ENDPOINT": settings.s3_endpoint,
            "ZIPFLOW_S3_ACCESS_KEY": settings.s3_access_key,
            "ZIPFLOW_S3_SECRET_KEY": settings.s3_secret_key,
            "ZIPFLOW_SOURCE_BUCKET": settings.source_bucket,
            "ZIPFLOW_PROCESSED_BUCKET": settings.processed_bucket,
            "ZIPFLOW_AMQP_URL": settings.amqp_url,
            "ZIPFLOW_EXCHANGE": settings.exchange,
            "ZIPFLOW_QUEUE": settings.queue,
            "ZIPFLOW_DEAD_LETTER": settings.dead_letter,
            "ZIPFLOW_RECONCILE_SECONDS": "0",
            "ZIPFLOW_WORKER_METRICS_PORT": "0",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while b"consuming" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def timed_load(
    settings: Settings,
    client: Minio,
    channel: pika.adapters.blocking_connection.BlockingChannel,
    scratch: Path,
    users: int,
    images: bool,
    seed: int,
) -> float:
    """Upload an archive (untimed), publish its event, and time until its rows are committed."""
    key = f"users-{users}-{'img' if images else 'csv'}-{seed}.zip"
    path = scratch / key
    write_demo_archive(path, users, seed=seed, images=images)
    result = client.fput_object(settings.source_bucket, key, str(path))
    body = minio_event(settings.source_bucket, key, result.etag.strip('"'), path.stat().st_size)
    source = f"{settings.source_bucket}/{key}"
    started = time.perf_counter()
    channel.basic_publish(
        settings.exchange,
        "bucketevents",
        body,
        pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
    # The run's counts are saved in the load's own transaction: once they show, so do the rows.
    while not Run.select().where(Run.source == source, Run.users_in_archive > 0).exists():
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{key} was not loaded within 10 minutes")
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - started


def minio_event(bucket: str, key: str, etag: str, size: int) -> bytes:
    """The body MinIO's AMQP target publishes for a PUT (the fields the worker reads and more)."""
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": "s3:ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key, safe=""),
                "size": size,
                "eTag": etag,
                "contentType": "application/zip",
                "sequencer": "186A2B3C4F1A2B3C",
            },
        },
    }
    return json.dumps(
        {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}", "Records": [record]}
    ).encode()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    main()
