"""`python3 -m bench run`: measure what users feel on a lab cluster of the benchmark's own.

The project's working tree is copied to a temporary directory (like the end-to-end tests do)
with its own file backend, passphrase `bench`, stack `bench` and lab network 10.210.4.0/24;
Pulumi runs inside the lab network (`python3 -m lab exec -- pulumi ...`). In order:

1. cold `pulumi up` (no machines -> healthy cluster, fib routed), then /fib/10 through the
   load balancer; `pulumi destroy` between runs. Each up writes the engine's event log
   (`--event-log`), and `pulumi stack export` gives the dependencies: the critical path;
2. no-op `pulumi up` (plain, then with `--refresh` as `./run up` runs it), no-op `pulumi preview`;
3. a one-client change: `pulumi config set --path hashicluster:clientSettings.client2.meta.bench
   VALUE` (a new value each run), then `pulumi preview` and `pulumi up`;
4. load with wrk through the load balancer, straight to all fib instances at once and to each
   (from Consul's catalog);
5. failover: one fib allocation stopped, the load balancer watched (bench/failover.py).

Everything is destroyed at the end, also after an error or Ctrl-C: `pulumi destroy`, then
`lab down` for any machine of the stack left over.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bench import critpath, eventlog, facts, report, scale, timeline, wrk
from bench.report import Figure, PathReport, Report
from bench.workspace import NETWORK, ROOT, STACK, BenchError, Done, Workspace, run_command

CHANGE_KEY = "hashicluster:clientSettings.client2.meta.bench"
# The one-client change: client2's Nomad step stages it, its roll step restarts Nomad, its rejoin
# step waits until the client runs again.
CHANGED_STEPS = ["client2-nomad", "client2-rejoin", "client2-roll"]
LOCK = Path(os.environ.get("HASHICLUSTER_LAB_RUNTIME", "/run/hashicluster/lab")).parent / "bench.lock"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """What to measure and how often."""

    runs: int = 3
    load_seconds: float = 10.0
    load_warmup: float = 1.0
    concurrency: int = 8
    failover_settle: float = 3.0
    quick: bool = False
    keep_workdir: bool = False
    clients: tuple[int, ...] = ()  # --clients: the scaling measurement (bench/scale.py) instead

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "quick": self.quick, "load_seconds": self.load_seconds,
                "load_warmup_s": self.load_warmup, "concurrency": self.concurrency,
                "failover_settle_s": self.failover_settle, "stack": STACK, "network": NETWORK,
                **({"clients": list(self.clients)} if self.clients else {})}


# --- the measurements -------------------------------------------------------------------------

@dataclass
class Addresses:
    """Where the cluster answers, from the stack's outputs."""

    lb: str
    server: str
    nomad: str  # the root server's Nomad API: http://..:4646, or https with TLS
    consul: str  # its Consul API: http://..:8500, or https://..:8501
    ca_cert: str | None = None  # with TLS: the cluster's CA certificate
    tokens: dict[str, str] = field(default_factory=dict)  # with ACLs: NOMAD_TOKEN, CONSUL_HTTP_TOKEN

    @property
    def fib(self) -> str:
        return f"http://{self.lb}/fib/10"


@dataclass
class Measured:
    """The run's figures by key, the critical paths of each run, and notes."""

    figures: dict[str, Figure]
    paths: dict[str, list[PathReport]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> None:
        if value is not None:
            self.figures[key].values.append(value)

    def detail(self, section: str, what: Any) -> None:
        """What one run of SECTION saw, for the JSON report."""
        self.details.setdefault(section, []).append(what)


FIGURES = [
    ("cold_up", "cold pulumi up: no machines -> healthy cluster", "s"),
    ("cold_fib", "cold up until /fib/10 answers through the LB", "s"),
    ("cold_critical", "cold up: critical path (sum of its step durations)", "s"),
    ("cold_ratio", "cold up: wall / critical path", "x"),
    ("noop_up", "no-op pulumi up", "s"),
    ("noop_refresh_up", "no-op pulumi up --refresh (./run up: the drift check)", "s"),
    ("noop_refresh_cost", "no-op: up --refresh minus plain up (the drift check's cost)", "s"),
    ("noop_preview", "no-op pulumi preview", "s"),
    ("change_preview", "one-client change: pulumi preview", "s"),
    ("change_up", "one-client change: pulumi up", "s"),
    ("change_critical", "one-client change: critical path", "s"),
    ("change_ratio", "one-client change: wall / critical path", "x"),
    ("lb_rps", "fib through the LB: requests/s (wrk)", "req/s"),
    ("lb_p50", "fib through the LB: p50 latency", "ms"),
    ("lb_p99", "fib through the LB: p99 latency", "ms"),
    ("lb_errors", "fib through the LB: failed requests", "%"),
    ("all_rps", "fib straight to all instances at once: requests/s", "req/s"),
    ("all_p50", "fib straight to all instances at once: p50 latency", "ms"),
    ("all_p99", "fib straight to all instances at once: p99 latency", "ms"),
    ("all_errors", "fib straight to all instances at once: failed requests", "%"),
    ("one_rps", "fib straight to one instance: requests/s (mean of the instances)", "req/s"),
    ("one_p99", "fib straight to one instance: p99 latency (mean of the instances)", "ms"),
    ("lb_overhead", "LB overhead: requests/s lost against all instances straight", "%"),
    ("lb_all_p99", "p99 latency ratio LB / all instances straight", "x"),
    ("failover_victim", "failover: stopped instance's last answer after the stop", "s"),
    ("failover_errors", "failover: failed requests through the LB", "count"),
    ("failover_retried", "failover: requests sent again (the LB closed a kept-alive connection)", "count"),
    ("failover_last_error", "failover: last failed request after the stop", "s"),
    ("failover_slowest", "failover: slowest request after the stop", "ms"),
    ("failover_replacement", "failover: replacement first answers after the stop", "s"),
    ("two_tier_up", "switch to two-tier: pulumi up", "s"),
    ("lb2_rps", "fib through the two-tier LB: requests/s", "req/s"),
    ("lb2_p50", "fib through the two-tier LB: p50 latency", "ms"),
    ("lb2_p99", "fib through the two-tier LB: p99 latency", "ms"),
    ("lb2_errors", "fib through the two-tier LB: failed requests", "%"),
    ("lb2_lb_rps", "requests/s ratio two-tier / one-tier", "x"),
    ("lb2_lb_p50", "p50 latency ratio two-tier / one-tier", "x"),
    ("destroy", "pulumi destroy", "s"),
    ("destroy_critical", "pulumi destroy: critical path", "s"),
]


class Bench:
    """One benchmark: the workspace, the settings and what has been measured so far."""

    def __init__(self, ws: Workspace, settings: Settings) -> None:
        self.ws = ws
        self.settings = settings
        self.m = Measured({key: Figure(key, label, unit) for key, label, unit in FIGURES})
        self.addresses: Addresses | None = None
        self.whole = False  # a whole, healthy cluster runs: its destroy time counts
        self.last_export: dict[str, Any] = {}  # the stack's export, as the last path report read it
        self.sizes: list[scale.Size] = []  # --clients: each size's figures

    @property
    def runs(self) -> range:
        return range(self.settings.runs)

    def step(self, what: str, run: int) -> None:
        log(f"{what} ({run + 1}/{self.settings.runs})")

    def export(self) -> dict[str, critpath.Node]:
        done, _ = self.ws.pulumi("stack export", "stack", "export", timeout=120)
        self.last_export = json.loads(done.stdout)
        return critpath.graph(self.last_export)

    def path_report(self, title: str, done: Done, events: eventlog.EventLog | None) -> PathReport:
        if events is None:
            raise BenchError(f"{title}: no event log")
        path = critpath.critical_path(self.export(), events)
        return PathReport(title=title, wall=done.wall, span=events.span, path=path)

    def cold(self) -> None:
        """Cold ups, with a destroy before every one but the first."""
        for run in self.runs:
            if run:
                self.step("pulumi destroy", run - 1)
                self.destroy(record=True)
            self.step("cold pulumi up", run)
            self.whole = False
            done, events = self.ws.pulumi("cold up", "up", "--yes", "--skip-preview", events=True)
            self.m.add("cold_up", done.wall)
            fib_after = self.probe_fib()
            self.m.add("cold_fib", done.wall + fib_after)
            self.whole = True
            path = self.path_report(f"cold up, run {run + 1}", done, events)
            self.m.paths.setdefault("cold", []).append(path)
            self.m.add("cold_critical", path.total)
            self.m.add("cold_ratio", path.ratio)
            self.m.detail("cold_up", {"wall_s": round(done.wall, 3), "fib_after_s": fib_after,
                                      "critical_path": report.path_json(path),
                                      "steps": events.durations() if events else [],
                                      "machines": timeline.machines_of(self.last_export)})

    def destroy(self, record: bool) -> None:
        """`pulumi destroy`; RECORD its time and critical path (not when it removes half a
        cluster): the deletes wait for their dependents' (critpath.reverse)."""
        self.whole = False
        before = self.export() if record else {}
        done, events = self.ws.pulumi("destroy", "destroy", "--yes", "--skip-preview", timeout=900,
                                      events=True)
        if record:
            self.m.add("destroy", done.wall)
            detail: dict[str, Any] = {"wall_s": round(done.wall, 3)}
            if events is not None:
                path = critpath.critical_path(critpath.reverse(before), events)
                report_ = PathReport(title=f"destroy, run {len(self.m.figures['destroy'].values)}",
                                     wall=done.wall, span=events.span, path=path)
                self.m.paths.setdefault("destroy", []).append(report_)
                self.m.add("destroy_critical", path.total)
                detail["critical_path"] = report.path_json(report_)
            self.m.detail("destroy", detail)
        left = self.ws.remove_machines()
        if left:
            self.m.notes.append(f"pulumi destroy left lab machines behind, removed with lab down: {left}")

    def read_addresses(self) -> Addresses:
        # With --show-secrets (the management tokens), so never into the log files.
        done, _ = self.ws.pulumi("stack output", "stack", "output", "--json", "--show-secrets", timeout=120,
                                 log=False)
        # The first machine of each role: the root server, the front load balancer.
        outputs = json.loads(done.stdout)
        roles = {m["role"]: m["address"] for m in reversed(list(outputs["machines"].values()))}
        return Addresses(lb=roles["lb"], server=roles["server"],
                         nomad=outputs["nomadUi"].removesuffix("/ui/"),
                         consul=outputs["consulUi"].removesuffix("/ui/"),
                         ca_cert=outputs.get("caCertificate"),
                         tokens={variable: outputs[name] for variable, name in (
                             ("NOMAD_TOKEN", "nomadManagementToken"),
                             ("CONSUL_HTTP_TOKEN", "consulManagementToken")) if name in outputs})

    def expect_no_changes(self, what: str, done: Done, events: eventlog.EventLog | None) -> None:
        changes = events.changes if events else {}
        self.m.detail(what, {"wall_s": round(done.wall, 3), "changes": changes})
        if changes:
            self.m.notes.append(f"the {what} was not a no-op: {changes}")

    def noop(self) -> None:
        for run in self.runs:
            self.step("no-op pulumi up", run)
            done, events = self.ws.pulumi("noop up", "up", "--yes", "--skip-preview", events=True)
            self.m.add("noop_up", done.wall)
            self.expect_no_changes("no-op up", done, events)
            # Side by side with the plain one: what `./run up` runs, the refresh (drift) first.
            self.step("no-op pulumi up --refresh", run)
            checked, events = self.ws.pulumi("noop refresh up", "up", "--yes", "--skip-preview", "--refresh",
                                             events=True)
            self.m.add("noop_refresh_up", checked.wall)
            self.m.add("noop_refresh_cost", checked.wall - done.wall)
            self.expect_no_changes("no-op up --refresh", checked, events)
        for run in self.runs:
            self.step("no-op pulumi preview", run)
            done, events = self.ws.pulumi("noop preview", "preview", events=True)
            self.m.add("noop_preview", done.wall)
            self.expect_no_changes("no-op preview", done, events)

    def change(self) -> None:
        for run in self.runs:
            value = f"run{run + 1}-{int(time.time())}"
            self.step(f"one-client change ({CHANGE_KEY}={value})", run)
            self.ws.pulumi("config set", "config", "set", "--path", CHANGE_KEY, value, timeout=120)
            preview, previewed = self.ws.pulumi("change preview", "preview", events=True)
            self.m.add("change_preview", preview.wall)
            done, events = self.ws.pulumi("change up", "up", "--yes", "--skip-preview", events=True)
            self.m.add("change_up", done.wall)
            changed = [s.name for s in events.changed_steps()] if events else []
            if sorted(changed) != CHANGED_STEPS:
                self.m.notes.append(f"the one-client change (run {run + 1}) changed {changed}, "
                                    f"expected {CHANGED_STEPS}")
            path = self.path_report(f"one-client change up, run {run + 1}", done, events)
            self.m.paths.setdefault("change", []).append(path)
            self.m.add("change_critical", path.total)
            self.m.add("change_ratio", path.ratio)
            self.m.detail("change", {
                "value": value, "preview_s": round(preview.wall, 3), "up_s": round(done.wall, 3),
                "previewed": previewed.changes if previewed else {}, "changed": changed,
                "critical_path": report.path_json(path),
                "changed_steps": [d for d in (events.durations() if events else []) if d["op"] != "same"]})

    def fib_instances(self, addresses: Addresses) -> list[str]:
        """Every passing fib instance's host:port, from Consul's catalog (passing only)."""
        answer = self.ws.in_lab("consul catalog", "probe",
                                f"{addresses.consul}/v1/health/service/fib?passing=1", "--timeout", "30",
                                ca_cert=addresses.ca_cert, env=addresses.tokens)
        entries = json.loads(answer["body"]) if answer["ok"] else []
        if not entries:
            raise BenchError(f"Consul at {addresses.consul} lists no passing fib instance: "
                             f"{answer['status']} {answer['body'][:300]}")
        return sorted(f"{e['Service']['Address']}:{e['Service']['Port']}" for e in entries)

    def run_wrk(self, key: str, label: str, url: str, run: int, threads: int,
                spread: list[str] | None = None) -> dict[str, Any]:
        """One wrk run against URL (or SPREAD over instances) from inside the lab network; with
        a KEY its figures go under KEY_rps, KEY_p50, KEY_p99, KEY_errors, failed requests into
        the notes."""
        s = self.settings
        connections = wrk.connections_for(s.concurrency, threads)
        where = f"{url} spread over {', '.join(spread)}" if spread else url
        self.step(f"wrk {label}: {where}, {s.load_seconds:g}s, {threads} threads x {connections // threads} "
                  "connections", run)
        args = ["wrk", url, "--seconds", str(s.load_seconds), "--threads", str(threads),
                "--connections", str(connections), *(["--spread", ",".join(spread)] if spread else [])]
        r: dict[str, Any] = self.ws.in_lab(f"wrk {label}", *args, timeout=s.load_seconds + 120)
        if key:
            self.m.add(f"{key}_rps", r["rps"])
            self.m.add(f"{key}_p50", r["p50_ms"])
            self.m.add(f"{key}_p99", r["p99_ms"])
            sent = r["requests"] + r["failed"]
            self.m.add(f"{key}_errors", 100.0 * r["failed"] / sent if sent else None)
        if r["failed"]:
            self.m.notes.append(f"wrk {label}, run {run + 1}: {r['failed']} requests failed: {r['errors']}")
        return r

    def load(self) -> None:
        """wrk through the LB, straight to all fib instances at once (its threads spread over
        them) and to each instance, with the same threads and connections, in turns that
        alternate their order between runs (so drift in the host's load evens out)."""
        assert self.addresses is not None
        instances = self.fib_instances(self.addresses)
        threads = len(instances)
        for run in self.runs:
            targets: list[tuple[str, str, str, list[str] | None]] = [
                ("lb", "LB", self.addresses.fib, None),
                ("all", "all instances", f"http://{instances[0]}/fib/10", instances),
                *(("", f"instance {i}", f"http://{i}/fib/10", None) for i in instances)]
            results = {label: self.run_wrk(key, label, url, run, threads, spread)
                       for key, label, url, spread in (targets if run % 2 == 0 else targets[::-1])}
            self.m.detail("load", results)
            ones = [results[f"instance {i}"] for i in instances]
            self.m.add("one_rps", sum(r["rps"] for r in ones) / len(ones))
            self.m.add("one_p99", sum(r["p99_ms"] for r in ones) / len(ones))
            lb, everyone = results["LB"], results["all instances"]
            if everyone["rps"]:
                self.m.add("lb_overhead", 100.0 * (1 - lb["rps"] / everyone["rps"]))
            if everyone["p99_ms"]:
                self.m.add("lb_all_p99", lb["p99_ms"] / everyone["p99_ms"])

    def failover(self) -> None:
        assert self.addresses is not None
        a = self.addresses
        for run in self.runs:
            self.step("failover: stop one fib allocation", run)
            result = self.ws.in_lab("failover", "failover", "--lb", a.fib, "--nomad", a.nomad,
                                    "--consul", a.consul, "--settle", str(self.settings.failover_settle),
                                    timeout=300, ca_cert=a.ca_cert, env=a.tokens)
            self.m.detail("failover", result)
            self.m.add("failover_victim", result["victim_last_s"])
            self.m.add("failover_errors", result["errors"])
            self.m.add("failover_retried", result["retried"])
            self.m.add("failover_last_error", result["last_error_s"])
            self.m.add("failover_slowest", result["slowest_ms"])
            if result["errors"]:
                self.m.notes.append(f"failover, run {run + 1}: {result['errors']} of {result['requests']} "
                                    f"requests after the stop failed: {result['error_kinds']}")
            if result["replacement_first_s"] is None:
                self.m.notes.append(f"failover run {run + 1}: no replacement answered within "
                                    f"{result['observed_s']:.0f}s of the stop")
            self.m.add("failover_replacement", result["replacement_first_s"])

    def two_tier(self) -> None:
        """The same load through the front balancer with two-tier routing (a backend balancer
        on each client), against the one-tier figures of `load`."""
        assert self.addresses is not None
        self.step("switch to two-tier load balancing", 0)
        self.ws.pulumi("config set", "config", "set", "hashicluster:loadBalancing", "two-tier", timeout=120)
        done, _ = self.ws.pulumi("two-tier up", "up", "--yes", "--skip-preview", timeout=600)
        self.m.add("two_tier_up", done.wall)
        answer = self.ws.in_lab("probe fib", "probe", self.addresses.fib, "--timeout", "60",
                                "--contains", '"fib": 55')
        if not answer["ok"]:
            raise BenchError(f"fib does not answer through the two-tier LB: {answer['status']} "
                             f"{answer['body'][:200]}")
        threads = len(self.fib_instances(self.addresses))
        for run in self.runs:
            self.m.detail("two_tier", self.run_wrk("lb2", "two-tier", self.addresses.fib, run, threads))
        for ratio, one_tier, two_tier in (("lb2_lb_rps", "lb_rps", "lb2_rps"),
                                          ("lb2_lb_p50", "lb_p50", "lb2_p50")):
            one, two = self.m.figures[one_tier].summary(), self.m.figures[two_tier].summary()
            if one and two and one.median:
                self.m.add(ratio, two.median / one.median)

    def probe_fib(self) -> float:
        """Seconds until fib answers fib(10) through the load balancer of the cluster up now.
        Each cold up makes a new CA and new tokens: its addresses are read anew."""
        self.addresses = self.read_addresses()
        answer = self.ws.in_lab("probe fib", "probe", self.addresses.fib, "--timeout", "60",
                                "--contains", '"fib": 55')
        if not answer["ok"]:
            raise BenchError(f"{self.addresses.fib} did not answer fib(10) within 60s; last answer: "
                             f"{answer['status']} {answer['body'][:300]}")
        return float(answer["elapsed_s"])

    def scale(self) -> bool:
        """The scaling measurement (bench/scale.py): one cluster per size. True when every
        size was measured whole."""
        self.sizes = scale.measure(self.ws, self.settings.clients, self.probe_fib, log,
                                   self.ws.remove_machines)
        return all(size.figures.keys() >= {key for key, _, _ in scale.FIGURES} for size in self.sizes)

    def measure(self) -> bool:
        """Every measurement; a failed one is noted and the next one runs, unless it was the
        cold up (nothing to measure on then). True when all of them succeeded."""
        if self.settings.clients:
            return self.scale()
        self.cold()
        ok = True
        for section in (self.noop, self.load, self.change, self.failover, self.two_tier):
            try:
                section()
            except BenchError as err:
                ok = False
                self.fail(err)
        return ok

    def fail(self, err: Exception) -> None:
        """Note a failure: its first line in the report, all of it on stderr."""
        log(f"error: {err}")
        self.m.notes.append(f"failed: {str(err).splitlines()[0]}")


def median_run(paths: list[PathReport]) -> PathReport | None:
    """The run whose wall time is the median one (the lower middle for an even count)."""
    ordered = sorted(paths, key=lambda p: p.wall)
    return ordered[(len(ordered) - 1) // 2] if ordered else None


@contextmanager
def single_instance() -> Iterator[None]:
    """One benchmark at a time on this host (they would share the stack's machines)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"another benchmark runs on this host (lock {LOCK}); wait for it") from None
        yield


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def pulumi_version(env: dict[str, str]) -> str:
    try:
        return run_command(["pulumi", "version"], ROOT, env, 60).stdout.strip()
    except (OSError, BenchError):
        return ""


def cleanup(bench: Bench) -> None:
    """Destroy the stack (timed when a whole cluster runs); `lab down` whatever machine of it
    is left."""
    log("cleaning up: pulumi destroy")
    try:
        bench.destroy(record=bench.whole)
    except (BenchError, OSError) as err:
        bench.m.notes.append(f"the final pulumi destroy failed ({str(err).splitlines()[0]}); "
                             "its machines were removed with lab down")
        left = bench.ws.remove_machines()
        log(f"pulumi destroy failed; removed with lab down: {left}")


def build_report(bench: Bench, host: dict[str, str], finished: str) -> Report:
    paths = [p for p in (median_run(bench.m.paths.get(k, [])) for k in ("cold", "change", "destroy")) if p]
    for path in paths:
        path.title += " (the median run)" if bench.settings.runs > 1 else ""
    host = {**host, "load average at end": facts.load_average(), "finished": finished}
    notes = [*bench.m.notes,
             "times are wall clock of the pulumi command as ./run runs it (inside `lab exec`); "
             "step durations come from the engine's event log, timed when each event appeared",
             f"work directory with every command's log and event log: {bench.ws.base}"
             if bench.settings.keep_workdir else ""]
    return Report(facts=host, settings=bench.settings.as_dict(), figures=list(bench.m.figures.values()),
                  paths=paths, notes=[n for n in notes if n], details=bench.m.details)


def cold_up_timeline(result: Report, out: Path) -> Path | None:
    """The first cold up's steps as a picture (bench/timeline.py) at OUT; None without one."""
    runs = result.details.get("cold_up") or []
    if not runs or not runs[0].get("steps"):
        return None
    first = runs[0]
    critical = [step["name"] for step in first["critical_path"]["steps"]]
    bars = timeline.rows(first["steps"], first.get("machines", {}), critical)
    timeline.write_svg(bars, f"cold pulumi up: {first['wall_s']:.1f} s wall, critical path "
                             f"{first['critical_path']['critical_path_s']:.1f} s", out)
    return out


def main(settings: Settings, json_out: Path | None, markdown_out: Path | None,
         stream: TextIO = sys.stdout) -> int:
    """Run the benchmark, print the table, write the files asked for. Exit status: 0, 1 when
    a measurement failed (the table shows what was measured), 130 on Ctrl-C."""
    if os.geteuid() != 0:
        raise BenchError("the benchmark makes lab machines, which needs root. Fix: sudo ./run bench")
    signal.signal(signal.SIGTERM, _terminate)
    status = 0
    with single_instance():
        ws = Workspace.create(ROOT)
        host = facts.collect(ROOT, pulumi_version(ws.env))
        bench = Bench(ws, settings)
        log(f"work directory {ws.base}; stack {STACK} on {NETWORK}")
        try:
            left = ws.remove_machines()
            if left:
                log(f"removed lab machines of an earlier, interrupted benchmark: {left}")
            ws.pulumi("stack init", "stack", "init", timeout=120)
            status = 0 if bench.measure() else 1
        except BenchError as err:
            status = 1
            bench.fail(err)
        except Exception as err:  # a bug or an answer of unexpected shape: still clean up
            status = 1
            traceback.print_exc()
            bench.fail(RuntimeError(f"unexpected {type(err).__name__}: {err}"))
        except KeyboardInterrupt:
            status = 130
            bench.m.notes.append("interrupted (Ctrl-C): the figures so far")
            log("interrupted")
        finally:
            _cleanup_uninterruptible(lambda: cleanup(bench))
        result = build_report(bench, host, time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        write_results(result, bench.sizes, stream, json_out, markdown_out)
        if status == 0 and not settings.keep_workdir:
            shutil.rmtree(ws.base, ignore_errors=True)
        else:
            log(f"kept the work directory for a look: {ws.base}")
    return status


def write_results(result: Report, sizes: list[scale.Size], stream: TextIO, json_out: Path | None,
                  markdown_out: Path | None) -> None:
    """The table on STREAM; JSON and Markdown (with its pictures beside it) when asked for.
    With sizes (--clients) the scaling table stands in for the figures nobody measured."""
    figures = result if not sizes else Report(facts=result.facts, settings=result.settings, figures=[],
                                              notes=result.notes)
    stream.write(report.text(figures) + (scale.text(sizes) if sizes else ""))
    if json_out is not None:
        doc = report.to_json(result)
        if sizes:
            doc["scaling"] = scale.to_json(sizes)
        json_out.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"written: {json_out}")
    if markdown_out is not None:
        pictures = []
        if sizes:
            scale.write_svg(sizes, markdown_out.with_name(f"{markdown_out.stem}-scaling.svg"))
            pictures.append(markdown_out.with_name(f"{markdown_out.stem}-scaling.svg"))
            body = report.markdown(figures) + scale.markdown(sizes, pictures[0].name)
        else:
            picture = cold_up_timeline(result, markdown_out.with_name(f"{markdown_out.stem}-cold-up.svg"))
            pictures += [picture] if picture else []
            body = report.markdown(result) + (f"\n![The first cold pulumi up, step by step]({picture.name})\n"
                                              if picture else "")
        markdown_out.write_text(body)
        log(f"written: {markdown_out}" + "".join(f" and {p}" for p in pictures))


def _cleanup_uninterruptible(action: Callable[[], None]) -> None:
    """Run ACTION; when a Ctrl-C stops it, say what may be left and how to remove it."""
    try:
        action()
    except KeyboardInterrupt:
        log(f"cleanup interrupted; machines left: remove them with `python3 -m lab down NAME` "
            f"for each `{STACK}-*` in `python3 -m lab status`")
        raise
