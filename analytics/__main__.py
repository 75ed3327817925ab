"""``python -m analytics``: the CLI (this is how ``mpirun`` starts it on every rank)."""

import sys

from analytics.cli import main

sys.exit(main())
