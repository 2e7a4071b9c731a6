"""The `zipflow` command: the composition root that may import worker, api and shared.

Each package contributes its own subcommands through `add_commands(subparsers)`; this
module only reads the settings once and dispatches.
"""

import argparse
import sys
from collections.abc import Sequence

from shared import cli as shared_cli
from shared.config import ConfigError, Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zipflow", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared_cli.add_commands(subparsers)
    for module_name in ("worker.cli", "api.cli"):
        try:
            module = __import__(module_name, fromlist=["add_commands"])
        except ModuleNotFoundError:
            continue
        module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"zipflow: {error}", file=sys.stderr)
        return 2
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
