"""Drift: the pure comparison (cluster/drift.py), the probe script on this host
(templates/probe/observe.py), and the two dynamic providers' decisions with the machine's
answers faked (cluster/services/drift.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cluster import drift
from cluster.render import File
from cluster.services import drift as providers

NOMAD = drift.expected_product(
    "nomad", [File("/etc/nomad.d/nomad.hcl", "data_dir = \"/opt/nomad\"\n")],
    {"path": "/usr/local/bin/nomad", "sha256": "b" * 64})
RECORD = "/var/lib/hashicluster/staging/consul.installed-binary-sha256"
CONSUL = drift.expected_product("consul", [File("/etc/consul.d/consul.hcl", "server = false\n")],
                                {"path": "/usr/local/bin/consul", "sha256_in": RECORD})
EXPECTED = {"nomad": NOMAD, "consul": CONSUL}


def healthy() -> dict[str, Any]:
    """What observe.py prints on a machine where nothing drifted."""
    return {"units": {"nomad": {"active": "active", "enabled": "enabled"},
                      "consul": {"active": "active", "enabled": "enabled"}},
            "files": {**NOMAD["files"], "/usr/local/bin/nomad": "b" * 64, **CONSUL["files"],
                      "/usr/local/bin/consul": "c" * 64},
            "read": {RECORD: "c" * 64}}


def test_nothing_drifted_on_a_healthy_machine() -> None:
    assert drift.drift(EXPECTED, healthy()) == {}


def test_each_kind_of_drift_is_named_on_its_product() -> None:
    seen = healthy()
    seen["units"]["consul"] = {"active": "inactive", "enabled": "enabled"}
    seen["units"]["nomad"] = {"active": "failed", "enabled": "disabled"}
    seen["files"]["/etc/nomad.d/nomad.hcl"] = "0" * 64
    seen["files"]["/usr/local/bin/consul"] = None
    assert drift.drift(EXPECTED, seen) == {
        "consul": ["consul stopped (inactive)", "/usr/local/bin/consul missing"],
        "nomad": ["nomad failed (failed)", "nomad not enabled (disabled)", "/etc/nomad.d/nomad.hcl changed"],
    }


def test_a_binary_unpacked_on_the_machine_is_checked_against_its_record() -> None:
    seen = healthy()
    seen["files"]["/usr/local/bin/consul"] = "d" * 64
    assert drift.drift(EXPECTED, seen) == {"consul": ["/usr/local/bin/consul changed"]}
    seen["read"][RECORD] = None
    assert drift.drift(EXPECTED, seen) == {
        "consul": ["/usr/local/bin/consul: no record of the binary installed"]}


def test_the_probe_request_names_every_unit_file_binary_and_record() -> None:
    request = drift.probe_request(EXPECTED)
    assert request == {"units": ["nomad", "consul"],
                       "files": sorted(["/etc/nomad.d/nomad.hcl", "/usr/local/bin/nomad",
                                        "/etc/consul.d/consul.hcl", "/usr/local/bin/consul"]),
                       "read": [RECORD]}


def test_a_repair_moves_the_generation_of_what_drifted_only() -> None:
    before = drift.generations({"gen_consul": 2, "gen_consul_template": 1})
    after = drift.repaired(before, ["consul-template"])
    assert after == {**before, "consul-template": 2}
    assert drift.generation_key("consul-template") == "gen_consul_template"
    assert drift.repaired(after, []) == after


def test_observe_reports_units_digests_and_records(tmp_path: Path) -> None:
    """The probe script itself, run by this host's python3 (no systemd here: units not found)."""
    present, record = tmp_path / "present", tmp_path / "record"
    present.write_text("hello\n")
    record.write_text("  abc \n")
    want = {"units": ["hashicluster-no-such-unit"], "files": [str(present), str(tmp_path / "absent")],
            "read": [str(record), str(tmp_path / "no-record")]}
    proc = subprocess.run([sys.executable, "-", json.dumps(want)], input=providers.OBSERVE.read_text(),
                          capture_output=True, text=True, check=True)
    seen = json.loads(proc.stdout)
    assert seen["files"] == {str(present): drift.sha256("hello\n"), str(tmp_path / "absent"): None}
    assert seen["read"] == {str(record): "abc", str(tmp_path / "no-record"): None}
    assert seen["units"]["hashicluster-no-such-unit"]["active"] != "active"


# --- the providers, with the machine's answers faked


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> list[drift.Drift]:
    """Stands in for ssh_probe: returns the drifts queued in the list, in order."""
    answers: list[drift.Drift] = []
    monkeypatch.setattr(providers, "ssh_probe", lambda connection, expected: answers.pop(0))
    return answers


def state_props() -> dict[str, Any]:
    created = providers.AgentStateProvider().create(
        {"name": "client1-state", "connection": {"host": "10.0.0.1"}, "expected": EXPECTED})
    assert created.outs is not None
    return created.outs


def test_a_clean_refresh_changes_nothing(fake_probe: list[drift.Drift]) -> None:
    provider = providers.AgentStateProvider()
    props = state_props()
    fake_probe.append({})
    read = provider.read("client1-state", props)
    assert read.outs == props
    assert provider.diff("client1-state", read.outs, props).changes is False


def test_drift_found_runs_the_steps_of_what_still_drifted(fake_probe: list[drift.Drift]) -> None:
    provider = providers.AgentStateProvider()
    props = state_props()
    fake_probe.append({"consul": ["consul stopped (inactive)"], "nomad": ["x changed"]})
    read = provider.read("client1-state", props)
    assert read.outs is not None and set(read.outs["drift"]) == {"consul", "nomad"}
    diff = provider.diff("client1-state", read.outs, props)
    assert diff.changes is True
    assert diff.stables is not None and "gen_cadvisor" in diff.stables and "gen_consul" not in diff.stables
    fake_probe.append({"consul": ["consul stopped (inactive)"]})  # at the update, nomad is fine again
    outs = provider.update("client1-state", read.outs, props).outs
    assert outs is not None and outs["drift"] == {}
    assert (outs["gen_consul"], outs["gen_nomad"], outs["gen_cadvisor"]) == (1, 0, 0)
    assert provider.diff("client1-state", outs, props).changes is False


def test_a_machine_that_does_not_answer_keeps_every_step_open_then_fails_if_still_down(
        fake_probe: list[drift.Drift]) -> None:
    provider = providers.AgentStateProvider()
    props = state_props()
    fake_probe.append(drift.unreachable("Connection refused"))
    read = provider.read("client1-state", props)
    assert read.outs is not None
    assert provider.diff("client1-state", read.outs, props).stables == []
    fake_probe.append(drift.unreachable("Connection refused"))
    with pytest.raises(RuntimeError, match="client1-state: machine: unreachable: Connection refused"):
        provider.update("client1-state", read.outs, props)


def test_power_found_down_counts_one_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    states = ["stopped", "running"]
    monkeypatch.setattr(providers, "power_state", lambda props: states.pop(0))
    provider = providers.MachinePowerProvider()
    props = {"kind": "nspawn", "name": "lab-client1", "dir": ""}
    created = provider.create(props).outs
    assert created is not None and created["generation"] == 0
    stopped = provider.read("lab-client1", created).outs
    assert stopped is not None and stopped["state"] == "stopped"
    diff = provider.diff("lab-client1", stopped, props)
    assert diff.changes is True and diff.stables == []
    booted = provider.update("lab-client1", stopped, props).outs
    assert booted is not None and (booted["state"], booted["generation"]) == ("running", 1)
    again = provider.read("lab-client1", booted).outs
    assert again == booted and provider.diff("lab-client1", again, props).changes is False


def test_lab_power_reads_the_lab_status(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = [{"name": "lab-client1", "running": True}, {"name": "lab-client2", "running": False}]

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert cmd == ["python3", "-m", "lab", "status", "--json"]
        return subprocess.CompletedProcess(cmd, 0, json.dumps(listing), "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert [providers.lab_power(n) for n in ("lab-client1", "lab-client2", "lab-client3")] == \
        ["running", "stopped", "gone"]
