"""HTTP load with wrk (Debian's `wrk`, a C load generator): a fixed number of threads and
keep-alive connections sending GETs back to back for a fixed time, run inside the lab network
(`python3 -m lab exec -- python3 -m bench wrk URL ...`). wrk's own script (bench/wrk_report.lua)
writes what it counted as one line of JSON, read here; with a spread, each wrk thread goes to
one of the given addresses in turn (several instances loaded at once, spread evenly).

wrk counts an answer other than 2xx/3xx as a `status` error, a connection that broke as
`read`/`write`/`connect`, a request slower than --timeout as `timeout`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.target import LoadError, Target

SCRIPT = Path(__file__).with_name("wrk_report.lua")
REQUEST_TIMEOUT = "5s"


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run counted."""

    url: str
    spread: tuple[str, ...]  # host:port each thread went to in turn; () for the URL's host
    threads: int
    connections: int
    seconds: float
    requests: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "spread": list(self.spread), "threads": self.threads,
                "connections": self.connections, "seconds": round(self.seconds, 3),
                "requests": self.requests, "rps": round(self.rps, 1), "errors": self.errors,
                "failed": self.failed, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms,
                "p99_ms": self.p99_ms, "max_ms": self.max_ms}


def connections_for(concurrency: int, threads: int) -> int:
    """wrk gives each thread connections // threads: the connection count nearest CONCURRENCY
    that every thread gets the same share of (at least one each)."""
    return max(1, round(concurrency / threads)) * threads


def command(url: str, seconds: float, threads: int, connections: int) -> list[str]:
    """wrk's command line; the URL must be a lab address or loopback."""
    Target.parse(url)
    if connections % threads:
        raise LoadError(f"{connections} connections do not split evenly over {threads} threads")
    return ["wrk", "--threads", str(threads), "--connections", str(connections), "--duration",
            f"{max(1, round(seconds))}s", "--timeout", REQUEST_TIMEOUT, "--script", str(SCRIPT), url]


def spread_env(spread: Sequence[str]) -> dict[str, str]:
    """The script's WRK_SPREAD, each host:port checked to be a lab address or loopback."""
    for target in spread:
        Target.parse(f"http://{target}/")
    return {"WRK_SPREAD": ",".join(spread)} if spread else {}


def parse(stdout: str, url: str, spread: Sequence[str], threads: int, connections: int) -> WrkResult:
    """The result from wrk's output: the JSON line the script wrote."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith('{"wrk"')), None)
    if line is None:
        raise LoadError(f"wrk printed no result line (its script: {SCRIPT}):\n{stdout[-1000:]}")
    doc = json.loads(line)
    latency = {k: v / 1000 for k, v in doc["latency_us"].items()}
    return WrkResult(url=url, spread=tuple(spread), threads=threads, connections=connections,
                     seconds=doc["duration_us"] / 1e6, requests=doc["requests"], errors=doc["errors"],
                     p50_ms=latency["p50"], p90_ms=latency["p90"], p99_ms=latency["p99"],
                     max_ms=latency["max"])


def run(url: str, seconds: float, threads: int, connections: int, spread: Sequence[str] = ()) -> WrkResult:
    """One wrk run from this process's network namespace."""
    cmd = command(url, seconds, threads, connections)
    env = {**os.environ, **spread_env(spread)}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except FileNotFoundError:
        raise LoadError("wrk is not installed. Fix: apt-get install wrk (./run bench installs it)") from None
    if proc.returncode != 0:
        raise LoadError(f"wrk exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return parse(proc.stdout, url, spread, threads, connections)
