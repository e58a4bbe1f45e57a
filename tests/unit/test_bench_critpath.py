"""bench/critpath.py: the critical path through the export's graph, weighed by an event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.critpath import ExportError, Node, critical_path, graph, provider_urn, reverse
from bench.eventlog import EventLog, Step, parse_lines

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
PREFIX = "urn:pulumi:bench::hashicluster::"


def export() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "export.json").read_text())
    return doc


def events(name: str) -> EventLog:
    return parse_lines((FIXTURES / name).read_text().splitlines())


def names(urns: tuple[str, ...]) -> set[str]:
    return {u.rsplit("::", 1)[-1] for u in urns}


def test_a_resource_waits_for_its_dependencies_parent_and_provider() -> None:
    nodes = graph(export())
    nomad = next(n for u, n in nodes.items() if u.endswith("::client1-nomad"))
    assert nomad.custom
    assert names(nomad.deps) == {"client1-lab", "client1-consul", "client1-nomad-upload",
                                 "nomad-servers-ready", "client1", "default_1_2_1"}
    machine = next(n for u, n in nodes.items() if u.endswith("::client1"))
    assert not machine.custom and names(machine.deps) == {"hashicluster-bench"}


def test_provider_urn_drops_the_id() -> None:
    ref = f"{PREFIX}pulumi:providers:command::default_1_2_1::bdc74573-eacb-4d75-9ea9-9a1199196f70"
    assert provider_urn(ref) == f"{PREFIX}pulumi:providers:command::default_1_2_1"


def test_the_cold_up_critical_path_runs_through_the_gates() -> None:
    path = critical_path(graph(export()), events("cold-up.events.jsonl"))
    assert [s.name for s in path.steps] == [
        "root-server-lab", "root-server-consul-upload", "root-server-consul", "consul-servers-ready",
        "client1-consul", "client1-nomad", "cluster-ready", "frontend-lb-nginx",
        "frontend-lb-consul-template", "job-fib"]
    assert path.total == 58.0  # of 69 s between the first event and the last
    assert [s.duration for s in path.steps][:3] == [9.0, 8.0, 10.0]


def test_the_wait_before_a_step_counts_from_its_latest_dependency() -> None:
    path = critical_path(graph(export()), events("cold-up.events.jsonl"))
    waits = {s.name: s.wait for s in path.steps}
    # The upload's pre event comes 7 s after its machine's lab step ended.
    assert waits["root-server-consul-upload"] == 7.0
    # The machine's lab step waits for nothing but its component's registration.
    assert waits["root-server-lab"] == 0.0
    assert path.waits == 7.0


def test_the_one_client_change_is_one_step_long() -> None:
    path = critical_path(graph(export()), events("change-up.events.jsonl"))
    assert [s.name for s in path.steps if s.op != "same"] == ["client2-nomad"]
    assert path.total == 1.0  # the engine's whole seconds; the runner notes finer times


def test_a_no_op_up_has_an_empty_or_weightless_path() -> None:
    path = critical_path(graph(export()), events("noop-up.events.jsonl"))
    assert path.total == 0.0


def synthetic(durations: dict[str, tuple[float, float]], deps: dict[str, list[str]],
              components: tuple[str, ...] = ()) -> tuple[dict[str, Node], EventLog]:
    nodes = {f"u::{n}": Node(f"u::{n}", n not in components, tuple(f"u::{d}" for d in deps.get(n, [])))
             for n in durations}
    log = EventLog(steps={f"u::{n}": Step(f"u::{n}", "t", ["create"], n not in components, start, end)
                          for n, (start, end) in durations.items()},
                   first=min(s for s, _ in durations.values()),
                   last=max(e for _, e in durations.values()))
    return nodes, log


def test_the_heaviest_branch_of_a_diamond_wins() -> None:
    nodes, log = synthetic({"a": (0, 1), "b": (1, 5), "c": (1, 3), "d": (6, 7)},
                           {"b": ["a"], "c": ["a"], "d": ["b", "c"]})
    path = critical_path(nodes, log)
    assert [s.name for s in path.steps] == ["a", "b", "d"]
    assert path.total == 1 + 4 + 1
    assert [s.wait for s in path.steps] == [0, 0, 1]


def test_components_weigh_nothing_even_when_their_events_span_the_run() -> None:
    nodes, log = synthetic({"stack": (0, 100), "a": (0, 2), "b": (2, 5)},
                           {"a": ["stack"], "b": ["a"]}, components=("stack",))
    path = critical_path(nodes, log)
    assert [s.name for s in path.steps] == ["a", "b"] and path.total == 5


def test_ties_go_to_the_chain_that_ends_later() -> None:
    nodes, log = synthetic({"a": (0, 2), "b": (3, 5)}, {})
    assert [s.name for s in critical_path(nodes, log).steps] == ["b"]


def test_top_keeps_path_order() -> None:
    nodes, log = synthetic({"a": (0, 1), "b": (1, 5), "c": (5, 6), "d": (6, 9)},
                           {"b": ["a"], "c": ["b"], "d": ["c"]})
    path = critical_path(nodes, log)
    assert [s.name for s in path.top(2)] == ["b", "d"]


def test_resources_only_in_the_log_are_nodes_without_dependencies() -> None:
    nodes, log = synthetic({"a": (0, 1)}, {})
    log.steps["u::gone"] = Step("u::gone", "t", ["delete"], True, 0.0, 4.0)
    assert [s.name for s in critical_path(nodes, log).steps] == ["gone"]


def test_bad_exports_are_named() -> None:
    with pytest.raises(ExportError, match=r"no deployment\.resources"):
        graph({"version": 3})
    with pytest.raises(ExportError, match="has no urn"):
        graph({"deployment": {"resources": [{"type": "x"}]}})
    nodes = {"u::a": Node("u::a", True, ("u::b",)), "u::b": Node("u::b", True, ("u::a",))}
    with pytest.raises(ExportError, match="cycle"):
        critical_path(nodes, EventLog())


def test_an_empty_graph_has_an_empty_path() -> None:
    assert critical_path({}, EventLog()).steps == ()


def test_a_destroy_deletes_the_dependents_first() -> None:
    """The graph made for an up (d needs b and c, which need a), with the times of a destroy:
    d goes first, a last; the heaviest chain of deletes runs through b."""
    nodes, log = synthetic({"d": (0, 1), "b": (1, 5), "c": (1, 3), "a": (6, 7)},
                           {"b": ["a"], "c": ["a"], "d": ["b", "c"]})
    reversed_ = reverse(nodes)
    assert set(reversed_["u::a"].deps) == {"u::b", "u::c"} and reversed_["u::d"].deps == ()
    path = critical_path(reversed_, log)
    assert [s.name for s in path.steps] == ["d", "b", "a"]
    assert path.total == 1 + 4 + 1
