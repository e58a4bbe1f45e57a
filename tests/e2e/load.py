"""A steady load of GETs through the load balancer while a test changes the cluster, with
every failure counted.

The load runs inside the lab network (`python3 -m lab exec`) until the test stops it. Each
request opens a connection of its own, as independent users would: a failure is the
cluster's (a refused or reset connection, a timeout, any answer but 200), never a kept-alive
connection that the load balancer closed between two requests.

The generator sends one request after the other without pause longer than 20 ms, so the
load covers the whole change: `load()` waits until it has seen requests complete before the
block starts and again after the block ends. The generator reports each request as it
completes, so a test can also wait for requests to flow while the cluster is in some state
(`LoadResult.wait_for_requests`) instead of sleeping.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..waiting import wait_until
from .conftest import Project

# One line per completed request, `STARTED ok` or `STARTED WHAT` (STARTED: unix time), and
# `done` once stopped.
LOAD = r"""
import http.client, os, sys, time
host, path, stop = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(stop):
    started = time.time()
    try:
        conn = http.client.HTTPConnection(host, 80, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        outcome = "ok" if resp.status == 200 else f"HTTP {resp.status}"
    except Exception as err:
        outcome = type(err).__name__
    print(round(started, 3), outcome, flush=True)
    time.sleep(0.02)
print("done", flush=True)
"""
# Requests seen to complete before a test's change starts and after it ends.
AROUND = 5
# A request gives up after 5 s: the time N requests may take at worst, with a margin.
SECONDS_PER_REQUEST = 6.0


@dataclass
class LoadResult:
    ok: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (unix time, what)
    during: int = 0  # requests completed while the block ran
    stopped: bool = False  # the generator has ended (its output is closed)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def completed(self) -> int:
        return self.ok + self.failed

    def note(self, line: str) -> None:
        """Count one line of the generator's output."""
        started, _, outcome = line.partition(" ")
        with self._lock:
            if outcome == "ok":
                self.ok += 1
            else:
                self.errors.append((float(started), outcome))

    def wait_for_requests(self, count: int, during: str) -> None:
        """Return once COUNT more requests than now have completed (answered or failed):
        traffic that went through while DURING (what the test is doing) held."""
        target = self.completed + count

        def done() -> bool:
            if self.stopped:
                raise AssertionError(f"the load generator stopped before {count} requests "
                                     f"went through {during}")
            return self.completed >= target

        wait_until(f"{count} requests through the load balancer {during}", done,
                   timeout=60 + count * SECONDS_PER_REQUEST, poll=0.1,
                   state=lambda: f"{self.completed} of {target} requests")

    def __str__(self) -> str:
        return (f"{self.failed} failed of {self.completed} requests, {self.during} of them during "
                "the change") + (f" (first failures: {self.errors[:5]})" if self.errors else "")


def _read(out: IO[str], result: LoadResult) -> None:
    try:
        for line in out:
            line = line.strip()
            if line and line != "done":
                result.note(line)
    finally:
        result.stopped = True


@contextmanager
def load(project: Project, host: str, path: str = "/fib/20") -> Iterator[LoadResult]:
    """GETs to http://HOST/PATH from before the block starts until after it ends; the result
    counts them as they complete."""
    stop = Path(project.path) / f".load-stop-{time.monotonic_ns()}"
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(["python3", "-m", "lab", "exec", "--", "python3", "-c", LOAD, host,
                                 path, str(stop)], cwd=project.path, env=project.env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        result = LoadResult()
        reader = threading.Thread(target=_read, args=(proc.stdout, result), daemon=True)
        reader.start()
        try:
            result.wait_for_requests(AROUND, "before the change starts")
            before = result.completed
            yield result
            result.during = result.completed - before
            result.wait_for_requests(AROUND, "after the change")
        finally:
            stop.touch()
            try:
                returncode = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                returncode = proc.wait()
            reader.join(timeout=60)
            stop.unlink(missing_ok=True)
        err.seek(0)
        if returncode != 0:
            raise AssertionError(f"the load generator failed ({returncode}): {err.read()}")
