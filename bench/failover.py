"""Failover through the load balancer: stop one fib allocation and watch the answers.

Runs inside the lab network (`python3 -m lab exec -- python3 -m bench failover ...`):

1. waits until the job has COUNT running allocations and the load balancer's answers name
   every one of them (fib's answers carry `instance`: the allocation's ID);
2. polls the load balancer in a tight loop on one keep-alive connection, noting when each
   answer arrived and which instance sent it (or that it failed);
3. after a baseline second, stops one allocation through Nomad's HTTP API (what `nomad
   alloc stop -detach` does), noting the time;
4. polls on until a new instance (Nomad's replacement) has answered and, for SETTLE seconds,
   neither the stopped instance nor an error has, or until TIMEOUT.

`analyse` (pure) turns the samples into the figures: when the stopped instance answered
last, how many requests failed and when the last did, when the replacement first answered,
and the slowest answer after the stop (the load balancer's retries on another instance).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import probe
from bench.target import Target


class FailoverError(RuntimeError):
    """The cluster is not in a state to measure failover; the message says what was seen."""


@dataclass(frozen=True)
class Sample:
    """One request through the load balancer: when it was sent and answered (monotonic
    seconds), its status (0: no answer) and the instance that answered."""

    sent: float
    done: float
    status: int
    instance: str | None
    error: str = ""  # for a failure without an answer: the exception's name
    retried: bool = False  # sent again on a new connection: the kept-alive one was closed on it

    @property
    def failed(self) -> bool:
        return self.status != 200 or self.instance is None


@dataclass(frozen=True)
class Analysis:
    """The figures of one failover, in seconds after the stop request was sent."""

    requests: int  # answered or failed after the stop
    victim_last: float  # the stopped instance's last answer (0.0: none after the stop)
    errors: int
    last_error: float  # 0.0 when no request failed
    replacement_first: float | None  # None: no new instance answered in time
    slowest_ms: float | None  # the slowest request sent after the stop
    error_kinds: dict[str, int]  # "HTTP 502": 1, "ConnectionResetError": 2
    retried: int = 0  # requests sent again on a new connection (see Poller)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "victim_last_s": self.victim_last, "errors": self.errors,
                "last_error_s": self.last_error, "replacement_first_s": self.replacement_first,
                "slowest_ms": self.slowest_ms, "error_kinds": self.error_kinds, "retried": self.retried}


def analyse(samples: Sequence[Sample], stopped_at: float, victim: str,
            known: frozenset[str]) -> Analysis:
    """The figures of SAMPLES after STOPPED_AT; KNOWN holds the instances from before it."""
    after = [s for s in samples if s.done >= stopped_at]
    victim_answers = [s.done - stopped_at for s in after if s.instance == victim]
    errors = [s.done - stopped_at for s in after if s.failed]
    new = [s.done - stopped_at for s in after if s.instance is not None and s.instance not in known]
    sent_after = [(s.done - s.sent) * 1000 for s in after if s.sent >= stopped_at]
    kinds = Counter(s.error or f"HTTP {s.status}" for s in after if s.failed)
    return Analysis(requests=len(after), victim_last=max(victim_answers, default=0.0),
                    errors=len(errors), last_error=max(errors, default=0.0),
                    replacement_first=min(new) if new else None,
                    slowest_ms=max(sent_after) if sent_after else None,
                    error_kinds=dict(sorted(kinds.items())), retried=sum(s.retried for s in after))


def instance_of(body: bytes) -> str | None:
    """The `instance` of a fib answer; None when the body is not one."""
    try:
        value = json.loads(body).get("instance")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@dataclass
class Poller:
    """Sends GETs to the load balancer back to back from a thread on one kept-alive connection,
    keeping every sample.

    Like every HTTP client (browsers, curl, Go's and urllib3's; RFC 9112, 9.3.1), it sends a
    GET again, once, on a new connection when the kept-alive one was closed under it before
    any answer came: nginx closes its idle kept-alive connections when it reloads (each time
    consul-template writes a new list of instances), and a request that crossed that close on
    the wire never reached a server. Such a request counts as `retried`, not failed; a failure
    on a new connection, or any answer but 200, counts as failed.
    """

    target: Target
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=3)

    def _get(self, conn: http.client.HTTPConnection) -> tuple[int, bytes, bool]:
        """One GET on CONN: status, body, and whether the server closes the connection."""
        conn.request("GET", self.target.path)
        resp = conn.getresponse()
        return resp.status, resp.read(), bool(resp.will_close)

    def _loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False  # CONN has carried an answer before
        while not self._stop.is_set():
            sent = time.monotonic()
            retried = False
            try:
                if conn is None:
                    conn, reused = self._connect(), False
                try:
                    status, body, closes = self._get(conn)
                except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                    if not reused:
                        raise
                    conn.close()  # closed under the request: once more, on a new connection
                    conn, retried = self._connect(), True
                    status, body, closes = self._get(conn)
                instance = instance_of(body) if status == 200 else None
                self.samples.append(Sample(sent, time.monotonic(), status, instance, retried=retried))
                reused = True
                if closes:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as err:
                self.samples.append(Sample(sent, time.monotonic(), 0, None, type(err).__name__, retried))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()


def running_allocations(nomad: str, job: str) -> list[str]:
    """IDs of the job's allocations that run and are meant to."""
    answer = probe.request(f"{nomad}/v1/job/{job}/allocations")
    if answer.status != 200:
        raise FailoverError(f"Nomad at {nomad} did not list the allocations of {job}: "
                            f"{answer.status} {answer.body[:200]}")
    return sorted(a["ID"] for a in answer.json()
                  if a.get("ClientStatus") == "running" and a.get("DesiredStatus") == "run")


def seen_through(lb: str, requests: int) -> set[str]:
    """The instances that answer REQUESTS GETs through the load balancer."""
    seen = set()
    for _ in range(requests):
        answer = probe.request(lb, timeout=3)
        instance = instance_of(answer.body.encode()) if answer.status == 200 else None
        if instance:
            seen.add(instance)
    return seen


def wait_until_steady(lb: str, nomad: str, job: str, count: int, timeout: float) -> list[str]:
    """Wait until COUNT allocations run and each answers through the load balancer."""
    deadline = time.monotonic() + timeout
    running: list[str] = []
    seen: set[str] = set()
    while time.monotonic() < deadline:
        running = running_allocations(nomad, job)
        if len(running) >= count:
            seen = seen_through(lb, 4 * count)
            if set(running) <= seen:
                return running
        time.sleep(0.5)
    raise FailoverError(f"after {timeout:.0f}s: {len(running)} running allocations of {job} "
                        f"(want {count}); instances answering through {lb}: {sorted(seen)}")


def address_of(consul: str, service: str, allocation: str) -> str:
    """ADDRESS:PORT of the allocation's instance of SERVICE in Consul's catalog ('' if absent)."""
    answer = probe.request(f"{consul}/v1/health/service/{service}")
    if answer.status != 200:
        return ""
    for entry in answer.json():
        svc = entry.get("Service", {})
        if allocation in str(svc.get("ID", "")):
            return f"{svc.get('Address')}:{svc.get('Port')}"
    return ""


def run(lb: str, nomad: str, consul: str, job: str, count: int, settle: float = 3.0,
        timeout: float = 60.0, baseline: float = 1.0) -> dict[str, Any]:
    """One failover; the JSON-ready result (see the module's docstring)."""
    Target.parse(lb)
    for api in (nomad, consul):  # https with TLS
        Target.parse(api, schemes=("http", "https"))
    running = wait_until_steady(lb, nomad, job, count, timeout)
    victim = running[0]
    victim_address = address_of(consul, job, victim)
    poller = Poller(Target.parse(lb))
    poller.start()
    try:
        time.sleep(baseline)
        stopped_at, stopped_epoch = time.monotonic(), time.time()
        answer = probe.request(f"{nomad}/v1/allocation/{victim}/stop", method="PUT")
        acknowledged = time.monotonic() - stopped_at
        if answer.status != 200:
            raise FailoverError(f"Nomad refused to stop allocation {victim}: {answer.status} "
                                f"{answer.body[:200]}")
        deadline = stopped_at + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            result = analyse(list(poller.samples), stopped_at, victim, frozenset(running))
            quiet = time.monotonic() - stopped_at - max(result.victim_last, result.last_error)
            if result.replacement_first is not None and quiet >= settle:
                break
    finally:
        poller.stop()
    result = analyse(poller.samples, stopped_at, victim, frozenset(running))
    return {"victim": victim, "victim_address": victim_address, "stopped_epoch": stopped_epoch,
            "stop_acknowledged_s": round(acknowledged, 4),
            "observed_s": round(poller.samples[-1].done - stopped_at, 3) if poller.samples else 0.0,
            **result.as_dict()}
