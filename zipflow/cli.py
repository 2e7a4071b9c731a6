"""The `zipflow` command: every entry point of zipflow behind one name.

Each package contributes its own subcommands through `add_commands(subparsers)`; this
module (the one place that may import worker, api and shared) reads the settings once
and dispatches.
"""

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from api import cli as api_cli
from shared import cli as shared_cli
from shared.config import Settings
from worker import cli as worker_cli

DESCRIPTION = """\
Load zips of user files into a store and serve them over HTTP. On a laptop,
`zipflow process` loads a local zip and `zipflow api` serves it; with MinIO and
RabbitMQ, `zipflow worker` loads every zip dropped into the source bucket."""
EPILOG = """\
examples:
  zipflow demo-data users.zip --users 1000 && zipflow process users.zip && zipflow api
  ZIPFLOW_DATABASE_URL=postgresql://user:password@host:5432/zipflow \\
    zipflow process users.zip --mode merge --csv output.csv

Settings come from ZIPFLOW_* variables (docs/configuration.md); `zipflow COMMAND --help`
describes each command and its options."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' lines, and each command on one line: argparse
    leaves the command names out when it aligns the help column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        self._action_max_length = len("    reprocess")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zipflow",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"zipflow {_version()}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands"
    )
    for package in (shared_cli, worker_cli, api_cli):
        package.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return shared_cli.run_entry_point(build_parser(), dispatch, argv)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the subcommand the command line named."""
    return args.handler(args, settings)


def _version() -> str:
    try:
        return version("zipflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
