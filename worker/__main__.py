"""`python -m worker`: the same as `zipflow worker`."""

import argparse
import sys

from shared.cli import run_entry_point
from worker.cli import add_options, run_worker


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker", description="Process each zip MinIO announces on RabbitMQ."
    )
    add_options(parser)
    return run_entry_point(parser, run_worker)


if __name__ == "__main__":
    sys.exit(main())
