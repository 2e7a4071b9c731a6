import sys

from zipflow.cli import main

sys.exit(main())
