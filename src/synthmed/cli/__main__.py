"""`python -m synthmed.cli` runs the command line."""

import sys

from synthmed.cli import main

sys.exit(main())
