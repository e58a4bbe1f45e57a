"""``python3 -m toolchain``."""

import sys

from toolchain.cli import main

sys.exit(main())
