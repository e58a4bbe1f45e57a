"""`python3 -m review`: see review/cli.py."""

from review.cli import main

raise SystemExit(main())
