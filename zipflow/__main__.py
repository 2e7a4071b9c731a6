"""`python -m zipflow`: the same as the `zipflow` command."""

import sys

from zipflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
