"""`python -m api`: the same server as `zipflow api`."""

import argparse
import sys

from api.cli import add_options, run
from shared.cli import run_entry_point


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api", description="Serve the zipflow HTTP API."
    )
    add_options(parser)
    return run_entry_point(parser, run)


if __name__ == "__main__":
    sys.exit(main())
