"""Entry point: `python3 -m lab <verb>`."""

import sys

from lab.cli import main

sys.exit(main())
