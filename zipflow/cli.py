"""The `zipflow` command: the composition root that may import worker, api and shared.

Each package contributes its own subcommands through `add_commands(subparsers)`; this
module only reads the settings once and dispatches.
"""

import argparse
import sys
from collections.abc import Sequence

from api import cli as api_cli
from shared import cli as shared_cli
from shared.config import Settings
from worker import cli as worker_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zipflow", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for package in (shared_cli, worker_cli, api_cli):
        package.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return shared_cli.run_entry_point(build_parser(), dispatch, argv)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the subcommand the command line named."""
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
