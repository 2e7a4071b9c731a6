"""`python -m api`: the same server as `zipflow api`."""

import argparse
import sys

from api.cli import add_options, run
from shared.config import ConfigError, Settings


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api", description="Serve the zipflow HTTP API."
    )
    add_options(parser)
    args = parser.parse_args()
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"zipflow api: {error}", file=sys.stderr)
        return 2
    return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
