"""Progress messages: always on stderr, so stdout stays machine-readable."""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def info(message: str) -> None:
    """Print one progress line to stderr, prefixed with the seconds since start."""
    print(f"lab [{time.monotonic() - _START:5.1f}s] {message}", file=sys.stderr, flush=True)
