"""Waiting on a condition, for tests.

A test never asserts how long something took (timings belong to `./run bench`) and never
sleeps a fixed time in the hope that something has happened meanwhile: it waits until the
condition it needs holds. The deadline is only a guard against waiting forever, generous
enough for a slow or busy host, and its failure names the condition that never held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Generous on purpose: reaching it means something is wrong, not that the host is slow.
HANG_GUARD = 300.0
POLL = 0.5


def wait_until(what: str, condition: Callable[[], Any], timeout: float = HANG_GUARD,
               poll: float = POLL, state: Callable[[], object] | None = None,
               ignore: tuple[type[BaseException], ...] = ()) -> float:
    """Seconds until CONDITION() is true (for printing, never for asserting).

    WHAT says what CONDITION means ("fib back to 3 running allocations"). After TIMEOUT
    seconds the wait fails with an AssertionError that names it, with STATE() when given (the
    last state seen). Exceptions of the types in IGNORE count as "not yet".
    """
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except ignore:
            pass
        if time.monotonic() - start > timeout:
            seen = f"; last state: {state()}" if state is not None else ""
            raise AssertionError(f"never true within {timeout:g} s: {what}{seen}")
        time.sleep(poll)
