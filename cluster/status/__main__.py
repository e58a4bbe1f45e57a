"""`python3 -m cluster.status`: see cluster/status/cli.py."""

from cluster.status.cli import main

raise SystemExit(main())
