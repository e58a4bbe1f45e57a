"""Entry point: `python3 -m vagrantbox <verb>`."""

import sys

from vagrantbox.cli import main

sys.exit(main())
