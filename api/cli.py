"""The `api` subcommand: serve the Falcon app with waitress."""

import argparse
import logging
import sys
import threading
import time

import peewee
import waitress

from api.app import create_app
from shared.config import Settings, store_label
from shared.db import database
from shared.logs import configure_logging
from shared.models import StoreUnavailable, User, create_schema, open_store
from shared.startup import log_connections

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_PORT = 65535
# waitress buffers up to this much of a response in memory before it makes the app wait
# for the client; its 16 MB default would hold most of a 100,000-user listing per request.
OUTBUF_HIGH_WATERMARK = 2 * 1024**2
STORE_RETRY_SECONDS = 2

log = logging.getLogger("zipflow.api")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API")
    add_options(parser)
    parser.set_defaults(handler=run)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on, 1 to 65535 (default {DEFAULT_PORT})",
    )


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to {MAX_PORT}")
    return int(text)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Bind the store, then serve until interrupted.

    A store whose server does not answer yet is no reason not to start: /ready answers
    503 until it does, and the schema is made current as soon as it answers.
    """
    configure_logging(settings.log_format)
    # waitress warns "Task queue depth is N" on every request that waits for a thread; under
    # load that is one line per request and says nothing the thread count does not.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # pika logs every step of a connection at INFO; /ready and POST /data open one each.
    logging.getLogger("pika").setLevel(logging.WARNING)
    log_connections(log, settings)
    try:
        open_store(settings.database_url, settings.api_statement_timeout_seconds)
        warn_if_empty(settings)
    except StoreUnavailable as error:
        log.warning("%s; serving anyway, /ready answers 503 until the store answers", error)
        threading.Thread(
            target=_open_when_back, args=(settings,), name="store-retry", daemon=True
        ).start()
    if not settings.api_token:
        log.warning(
            "ZIPFLOW_API_TOKEN is not set: POST /data is open to anyone who can reach this port"
        )
    if not settings.uses_minio:
        log.info("without MinIO, POST /data answers 503: load archives with `zipflow process`")
    try:
        server = waitress.create_server(
            create_app(settings),
            host=args.host,
            port=args.port,
            threads=settings.api_threads,
            outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
            ident="zipflow",
        )
    except OSError as error:
        print(
            f"zipflow api: cannot listen on {args.host}:{args.port}: {error.strerror}"
            " (another server there? pick another --port)",
            file=sys.stderr,
        )
        return 1
    except ValueError:  # waitress: a --host that does not resolve
        print(
            f"zipflow api: cannot listen on {args.host}:{args.port}: the host is not an"
            " address or name of this machine (try 127.0.0.1 or 0.0.0.0)",
            file=sys.stderr,
        )
        return 2
    server.print_listen("Serving on http://{}:{}")
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.close()
    return 0


def warn_if_empty(settings: Settings) -> None:
    """An empty store is most often the wrong store: say where this one is."""
    if User.select().exists():
        return
    hint = (
        "; ZIPFLOW_DATABASE_URL is relative to the folder the API was started in"
        if settings.database_url.startswith("sqlite:///")
        and not settings.database_url.startswith("sqlite:////")
        else ""
    )
    log.warning(
        "%s holds no users yet: load an archive (zipflow process ZIP) or point the API at"
        " the store you loaded%s",
        store_label(settings.database_url),
        hint,
    )


def _open_when_back(settings: Settings) -> None:
    """Make the schema current once the store answers, so the API serves it without a restart."""
    while True:
        time.sleep(STORE_RETRY_SECONDS)
        try:
            create_schema()
        except peewee.OperationalError:
            continue
        finally:
            database.close()  # this thread's connection; requests open their own
        log.info("the store answers now: %s", store_label(settings.database_url))
        return
