"""The cold up's timeline picture: which machine each step belongs to, the bars, the SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import timeline
from bench.report import Report
from bench.runner import cold_up_timeline

P = "urn:pulumi:s::p::"
STACK, MACHINE = "pulumi:pulumi:Stack", "hashicluster:machines:NspawnMachine"
COMMAND, DYNAMIC = "command:remote:Command", "pulumi-python:dynamic:Resource"


def resource(kind: str, name: str, parent: tuple[str, str] | None = (STACK, "p-s")) -> dict[str, str]:
    entry = {"urn": f"{P}{kind}::{name}", "type": kind}
    return {**entry, "parent": f"{P}{parent[0]}::{parent[1]}"} if parent else entry


def step(name: str, kind: str, start: float, duration: float | None, op: str = "create") -> dict[str, Any]:
    return {"name": name, "type": kind, "op": op, "start_s": start, "duration_s": duration}


EXPORT = {"deployment": {"resources": [
    resource(STACK, "p-s", None),
    resource(MACHINE, "client1"),
    resource(COMMAND, "client1-consul", (MACHINE, "client1")),
    resource(MACHINE, "root-server"),
    resource(COMMAND, "consul-acl", (MACHINE, "root-server")),
    resource(DYNAMIC, "job-fib"),
]}}
STEPS = [step("root-server", MACHINE, 0.0, 30.0), step("consul-acl", COMMAND, 1.0, 4.0),
         step("client1-consul", COMMAND, 5.0, 3.0), step("job-fib", DYNAMIC, 8.0, 5.0),
         step("client1-nomad", COMMAND, 5.0, 0.0, op="same"), step("client1-cadvisor", COMMAND, 6.0, None)]


def test_steps_sit_on_the_row_of_their_machine() -> None:
    machines = timeline.machines_of(EXPORT)
    assert machines == {"client1": "client1", "client1-consul": "client1", "root-server": "root-server",
                        "consul-acl": "root-server"}
    bars = timeline.rows(STEPS, machines, ["consul-acl", "client1-consul", "job-fib"])
    # Components, unchanged steps and unfinished ones draw nothing.
    assert [(b.row, b.name, b.critical) for b in bars] == [("root-server", "consul-acl", True),
                                                          ("client1", "client1-consul", True),
                                                          ("cluster", "job-fib", True)]
    assert timeline.row_order(bars) == ["root-server", "client1", "cluster"]


def test_the_picture_names_the_critical_steps_and_is_the_same_for_the_same_run(tmp_path: Path) -> None:
    details = {"cold_up": [{"wall_s": 14.0, "critical_path": {"critical_path_s": 12.0, "steps": [
        {"name": "consul-acl"}, {"name": "client1-consul"}, {"name": "job-fib"}]},
        "steps": STEPS, "machines": timeline.machines_of(EXPORT)}]}
    report = Report(facts={}, settings={}, figures=[], paths=[], notes=[], details=details)
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    assert cold_up_timeline(report, first) == first
    cold_up_timeline(report, second)
    svg = first.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for label in ("consul-acl", "job-fib", "root-server", "client1", "cluster", "critical path 12.0 s"):
        assert label in svg, label
    assert first.read_bytes() == second.read_bytes()
    assert cold_up_timeline(Report(facts={}, settings={}, figures=[], paths=[], notes=[], details={}),
                            tmp_path / "none.svg") is None


def test_steps_that_run_at_once_get_lanes_of_their_own() -> None:
    bars = [timeline.Bar("c", name, start, duration, False)
            for name, start, duration in (("a", 0.0, 5.0), ("b", 1.0, 2.0), ("c", 3.0, 1.0), ("d", 5.0, 1.0))]
    assert [[b.name for b in lane] for lane in timeline.lanes(bars)] == [["a", "d"], ["b", "c"]]
