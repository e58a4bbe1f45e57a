"""A steady load of GETs through the load balancer while a test changes the cluster, with
every failure counted.

The load runs inside the lab network (`python3 -m lab exec`) until the test stops it. Each
request opens a connection of its own, as independent users would: a failure is the
cluster's (a refused or reset connection, a timeout, any answer but 200), never a kept-alive
connection that the load balancer closed between two requests.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import Project

LOAD = r"""
import http.client, json, os, sys, time
host, path, stop = sys.argv[1], sys.argv[2], sys.argv[3]
ok, errors = 0, []
while not os.path.exists(stop):
    started = time.time()
    try:
        conn = http.client.HTTPConnection(host, 80, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status == 200:
            ok += 1
        else:
            errors.append([round(started, 3), f"HTTP {resp.status}"])
    except Exception as err:
        errors.append([round(started, 3), type(err).__name__])
    time.sleep(0.02)
print(json.dumps({"ok": ok, "errors": errors}))
"""


@dataclass
class LoadResult:
    ok: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (unix time, what)

    @property
    def failed(self) -> int:
        return len(self.errors)

    def __str__(self) -> str:
        return f"{self.failed} failed of {self.ok + self.failed} requests" + (
            f" (first: {self.errors[:5]})" if self.errors else "")


@contextmanager
def load(project: Project, host: str, path: str = "/fib/20") -> Iterator[LoadResult]:
    """GETs to http://HOST/PATH for as long as the block runs; the result is filled in after."""
    stop = Path(project.path) / f".load-stop-{time.monotonic_ns()}"
    proc = subprocess.Popen(["python3", "-m", "lab", "exec", "--", "python3", "-c", LOAD, host, path,
                             str(stop)], cwd=project.path, env=project.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    result = LoadResult()
    try:
        time.sleep(1)  # under way before the change starts
        yield result
    finally:
        stop.touch()
        out, err = proc.communicate(timeout=60)
        stop.unlink()
        if proc.returncode != 0:
            raise AssertionError(f"the load generator failed ({proc.returncode}): {err}")
        answer = json.loads(out)
        result.ok = answer["ok"]
        result.errors = [(t, what) for t, what in answer["errors"]]
