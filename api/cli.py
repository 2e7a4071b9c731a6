"""The `api` subcommand: serve the Falcon app with waitress."""

import argparse
import logging

import waitress

from api.app import create_app
from shared.config import Settings
from shared.db import open_database
from shared.models import create_schema

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# waitress buffers up to this much of a response in memory before it makes the app wait
# for the client; its 16 MB default would hold most of a 100,000-user listing per request.
OUTBUF_HIGH_WATERMARK = 2 * 1024**2

log = logging.getLogger("zipflow.api")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API (waitress)")
    add_options(parser)
    parser.set_defaults(handler=run)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Bind the store, then serve until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # waitress warns "Task queue depth is N" on every request that waits for a thread; under
    # load that is one line per request and says nothing the thread count does not.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    open_database(settings.database_url)
    create_schema()
    if not settings.api_token:
        log.warning(
            "ZIPFLOW_API_TOKEN is not set: POST /data is open to anyone who can reach this port"
        )
    waitress.serve(
        create_app(settings),
        host=args.host,
        port=args.port,
        threads=settings.api_threads,
        outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
        ident="zipflow",
    )
    return 0
