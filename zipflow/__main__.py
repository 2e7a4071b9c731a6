"""`python -m zipflow`: the same as the `zipflow` command."""

import sys

from zipflow.cli import main

# The guard matters: helper processes that parse large archives import the main module.
if __name__ == "__main__":
    sys.exit(main())
