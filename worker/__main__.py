"""`python -m worker`: the same as `zipflow worker`."""

import sys

from shared.config import ConfigError, Settings
from worker.cli import run_worker


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"zipflow worker: {error}", file=sys.stderr)
        return 2
    return run_worker(None, settings)


if __name__ == "__main__":
    sys.exit(main())
