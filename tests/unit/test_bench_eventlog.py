"""bench/eventlog.py on real event logs of this program (tests/unit/fixtures/bench/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eventlog import EventLogError, parse, parse_lines, short_name

FIXTURES = Path(__file__).parent / "fixtures" / "bench"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_a_cold_up_creates_every_resource_and_succeeds() -> None:
    log = parse_lines(lines("cold-up.events.jsonl"))
    assert log.result == "succeeded"
    assert log.changes == {"create": 47}
    assert {s.op for s in log.steps.values()} == {"create"}
    assert log.span == 69.0  # first to last event, by the engine's whole seconds


def test_step_times_come_from_the_pre_and_outputs_events() -> None:
    steps = parse_lines(lines("cold-up.events.jsonl")).steps
    consul = next(s for s in steps.values() if s.name == "root-server-consul")
    assert (consul.type, consul.custom, consul.duration) == ("command:remote:Command", True, 10.0)
    job = next(s for s in steps.values() if s.name == "job-fib")
    assert job.type == "pulumi-python:dynamic/nomad:Job" and job.duration == 8.0


def test_components_and_providers_are_told_apart() -> None:
    steps = {s.name: s for s in parse_lines(lines("cold-up.events.jsonl")).steps.values()}
    assert steps["root-server"].custom is False  # hashicluster:machines:NspawnMachine
    assert steps["hashicluster-bench"].custom is False  # the stack
    assert steps["default_1_2_1"].custom is True  # the command provider
    assert steps["root-server-lab"].custom is True


def test_a_no_op_up_has_only_same_steps() -> None:
    log = parse_lines(lines("noop-up.events.jsonl"))
    assert log.changes == {}
    assert log.changed_steps() == []
    assert {s.op for s in log.steps.values()} == {"same"}


def test_the_one_client_change_updates_one_step() -> None:
    log = parse_lines(lines("change-up.events.jsonl"))
    assert log.changes == {"update": 1}
    assert [(s.name, s.op) for s in log.changed_steps()] == [("client2-nomad", "update")]


def test_noted_times_take_precedence_over_the_engine_timestamps() -> None:
    raw = lines("change-up.events.jsonl")
    # Each line "appeared" 0.25 s after the one before it.
    log = parse((1000.0 + 0.25 * i, line) for i, line in enumerate(raw))
    nomad = next(s for s in log.steps.values() if s.name == "client2-nomad")
    pre = next(i for i, line in enumerate(raw) if "resourcePreEvent" in line and "::client2-nomad\"" in line)
    out = next(i for i, line in enumerate(raw) if "resOutputsEvent" in line and "::client2-nomad\"" in line)
    assert nomad.start == 1000.0 + 0.25 * pre
    assert nomad.duration == pytest.approx(0.25 * (out - pre))
    assert log.span == pytest.approx(0.25 * (len(raw) - 1))


def test_a_step_without_outputs_has_no_duration() -> None:
    raw = [line for line in lines("change-up.events.jsonl")
           if not ("resOutputsEvent" in line and "::client2-nomad\"" in line)]
    nomad = next(s for s in parse_lines(raw).steps.values() if s.name == "client2-nomad")
    assert nomad.end is None and nomad.duration is None


def test_a_replacement_keeps_its_first_start_and_last_end() -> None:
    raw = lines("change-up.events.jsonl")
    pre = next(json.loads(line) for line in raw if "resourcePreEvent" in line and "client2-nomad\"" in line)
    out = next(json.loads(line) for line in raw if "resOutputsEvent" in line and "client2-nomad\"" in line)
    steps = []
    for op, offset in (("create-replacement", 0), ("replace", 3), ("delete-replaced", 5)):
        for event, kind in ((pre, "resourcePreEvent"), (out, "resOutputsEvent")):
            copy = json.loads(json.dumps(event))
            copy[kind]["metadata"]["op"] = op
            copy["timestamp"] = 100 + offset + (1 if kind == "resOutputsEvent" else 0)
            steps.append(json.dumps(copy))
    step = next(iter(parse_lines(steps).steps.values()))
    assert step.ops == ["create-replacement", "replace", "delete-replaced"]
    assert step.op == "create-replacement"
    assert (step.start, step.end) == (100.0, 106.0)


def test_blank_lines_are_skipped_and_bad_ones_named() -> None:
    assert parse_lines(["", "  "]).steps == {}
    with pytest.raises(EventLogError, match="line 2 is not JSON"):
        parse_lines(['{"timestamp": 1}', '{"timestamp": 1, "resourcePre'])
    with pytest.raises(EventLogError, match=r"line 1: resourcePreEvent without metadata\.urn"):
        parse_lines(['{"timestamp": 1, "resourcePreEvent": {"metadata": {}}}'])
    with pytest.raises(EventLogError, match="no numeric `timestamp`"):
        parse_lines(['{"cancelEvent": {}}'])


def test_short_name_is_the_last_part_of_the_urn() -> None:
    urn = ("urn:pulumi:bench::hashicluster::hashicluster:machines:NspawnMachine"
           "$command:remote:Command::client2-nomad")
    assert short_name(urn) == "client2-nomad"


def test_a_config_change_updates_the_dynamic_provider_too() -> None:
    log = parse_lines(lines("change-up.events.jsonl"))
    # The full log's `default` (pulumi-python) provider step is an update: it gets the
    # whole stack config. The fixture keeps the command provider only; derive one.
    provider = next(s for s in log.steps.values() if s.name == "default_1_2_1")
    assert provider.provider and provider.op == "same"
    provider.ops = ["update"]
    assert [s.name for s in log.changed_steps()] == ["client2-nomad"]
    assert [s.name for s in log.changed_steps(providers=True)] == ["default_1_2_1", "client2-nomad"]


def test_durations_list_every_step_from_the_first_event() -> None:
    rows = parse_lines(lines("cold-up.events.jsonl")).durations()
    assert rows[0] == {"name": "hashicluster-bench", "type": "pulumi:pulumi:Stack", "op": "create",
                       "start_s": 1.0, "duration_s": 67.0}  # the prelude came 1 s before
    consul = next(r for r in rows if r["name"] == "root-server-consul")
    assert (consul["start_s"], consul["duration_s"]) == (25.0, 10.0)
