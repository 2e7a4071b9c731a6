"""`python -m worker`: the same as `zipflow worker`."""

import argparse
import sys

from shared.config import ConfigError, Settings
from worker.cli import add_options, run_worker


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker", description="Process each zip MinIO announces on RabbitMQ."
    )
    add_options(parser)
    args = parser.parse_args()
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"zipflow worker: {error}", file=sys.stderr)
        return 2
    return run_worker(args, settings)


if __name__ == "__main__":
    sys.exit(main())
