"""A small HTTP load generator: a fixed number of threads, each with one keep-alive
connection, sending GETs back to back for a fixed time.

Run it inside the lab network (`python3 -m lab exec -- python3 -m bench load URL`): lab
addresses exist only there. Requests of the first `warmup` seconds are sent but not counted.
Only 200 answers count as served; anything else, a timeout or a broken connection is an
error, and the thread opens a new connection. Python threads share one interpreter lock, so
the generator itself tops out at a few thousand requests per second: the figures compare
two targets under the same generator, they are not the targets' limits.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.stats import percentile

LAB_PREFIX = "10.210."


class LoadError(ValueError):
    """The load cannot be run as asked."""


@dataclass(frozen=True)
class Target:
    """Where the GETs go."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str, allowed_prefix: str = LAB_PREFIX,
              schemes: tuple[str, ...] = ("http",)) -> Target:
        """An http:// URL (or one of SCHEMES) to a lab address (10.210.x.y) or loopback;
        nothing else is loaded."""
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise LoadError(f"{url!r} is not an {'/'.join(schemes)}://HOST[:PORT]/PATH URL")
        host = parts.hostname
        if not (host.startswith(allowed_prefix) or host.startswith("127.")):
            raise LoadError(f"{host} is neither a lab address ({allowed_prefix}x.y) nor loopback: "
                            "the load generator sends traffic only inside the lab")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host=host, port=parts.port or 80, path=path)


@dataclass(frozen=True)
class LoadResult:
    """What the counted part of a load run served."""

    url: str
    seconds: float  # the counted window
    concurrency: int
    served: int
    errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)  # "HTTP 502": 3, "ConnectionResetError": 1

    @property
    def rps(self) -> float:
        return self.served / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def of(cls, url: str, seconds: float, concurrency: int, latencies: list[float],
           errors: int, error_kinds: dict[str, int] | None = None) -> LoadResult:
        """From the latencies (seconds) of the served requests."""
        def ms(p: float) -> float | None:
            return percentile(latencies, p) * 1000 if latencies else None
        return cls(url=url, seconds=seconds, concurrency=concurrency, served=len(latencies),
                   errors=errors, p50_ms=ms(50), p90_ms=ms(90), p99_ms=ms(99),
                   max_ms=max(latencies) * 1000 if latencies else None,
                   error_kinds=dict(sorted((error_kinds or {}).items())))

    def as_dict(self) -> dict[str, object]:
        return {"url": self.url, "seconds": round(self.seconds, 3), "concurrency": self.concurrency,
                "served": self.served, "errors": self.errors, "rps": round(self.rps, 1),
                "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
                "max_ms": self.max_ms, "error_kinds": self.error_kinds}


@dataclass
class _Tally:
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)


def _worker(target: Target, counted_from: float, until: float, timeout: float, tally: _Tally) -> None:
    """Send GETs on one keep-alive connection until UNTIL; count those that start after
    COUNTED_FROM."""
    conn: http.client.HTTPConnection | None = None
    while True:
        started = time.monotonic()
        if started >= until:
            break
        counted = started >= counted_from
        try:
            if conn is None:
                conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
            conn.request("GET", target.path)
            resp = conn.getresponse()
            resp.read()
            took = time.monotonic() - started
            if resp.status == 200:
                if counted:
                    tally.latencies.append(took)
            elif counted:
                tally.errors[f"HTTP {resp.status}"] += 1
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as err:
            if counted:
                tally.errors[type(err).__name__] += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)  # a refused connection must not become a busy loop
    if conn is not None:
        conn.close()


def run(url: str, seconds: float, concurrency: int, warmup: float = 1.0,
        timeout: float = 5.0) -> LoadResult:
    """Load URL from CONCURRENCY threads for WARMUP + SECONDS; the result covers SECONDS."""
    if seconds <= 0 or concurrency <= 0 or warmup < 0:
        raise LoadError("seconds and concurrency must be positive, warmup not negative")
    target = Target.parse(url)
    start = time.monotonic()
    counted_from, until = start + warmup, start + warmup + seconds
    tallies = [_Tally([]) for _ in range(concurrency)]
    threads = [threading.Thread(target=_worker, args=(target, counted_from, until, timeout, t),
                                daemon=True) for t in tallies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Requests still in flight at UNTIL finish late; the window ends when the last one does.
    window = max(time.monotonic(), until) - counted_from
    latencies = [lat for t in tallies for lat in t.latencies]
    kinds: Counter[str] = sum((t.errors for t in tallies), Counter())
    return LoadResult.of(url, window, concurrency, latencies, sum(kinds.values()), dict(kinds))
