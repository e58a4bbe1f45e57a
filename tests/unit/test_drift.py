"""Drift: the pure comparison (cluster/drift.py), the probe script on this host
(templates/probe/observe.py), and the two dynamic providers' decisions with the machine's
answers faked (cluster/services/drift.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cluster import drift
from cluster.services import drift as providers

PRODUCTS = ["consul", "nomad"]
CONFIG = "/etc/nomad.d/nomad.hcl"


def healthy() -> dict[str, Any]:
    """What observe.py prints on a machine where nothing drifted."""
    unit = {"active": "active", "enabled": "enabled", "manifest": True}
    return {"consul": {**unit, "files": {"/usr/local/bin/consul": "ok", "/etc/consul.d/consul.hcl": "ok"}},
            "nomad": {**unit, "files": {"/usr/local/bin/nomad": "ok", CONFIG: "ok"}}}


def test_nothing_drifted_on_a_healthy_machine() -> None:
    assert drift.drift(PRODUCTS, healthy()) == {}


def test_each_kind_of_drift_is_named_on_its_product() -> None:
    seen = healthy()
    seen["consul"].update(active="inactive")
    seen["consul"]["files"]["/usr/local/bin/consul"] = "missing"
    seen["nomad"].update(active="failed", enabled="disabled")
    seen["nomad"]["files"][CONFIG] = "changed"
    assert drift.drift(PRODUCTS, seen) == {
        "consul": ["consul stopped (inactive)", "/usr/local/bin/consul missing"],
        "nomad": ["nomad failed (failed)", "nomad not enabled (disabled)", f"{CONFIG} changed"],
    }


def test_a_product_without_its_install_record_has_drifted() -> None:
    seen = healthy()
    del seen["nomad"]
    assert drift.drift(PRODUCTS, seen) == {"nomad": [
        "nomad stopped (unknown)", "nomad not enabled (not-found)", "nomad: no record of its install"]}


def test_a_repair_moves_the_generation_of_what_drifted_only() -> None:
    before = drift.generations({"gen_consul": 2, "gen_consul_template": 1})
    after = drift.repaired(before, ["consul-template"])
    assert after == {**before, "consul-template": 2}
    assert drift.generation_key("consul-template") == "gen_consul_template"
    assert drift.repaired(after, []) == after


def test_observe_checks_each_manifest_entry(tmp_path: Path) -> None:
    """The probe script itself, run by this host's python3 against a manifest written by
    sha256sum, as the install steps write it (no systemd here: the units are not found)."""
    manifests = tmp_path / "manifest"
    manifests.mkdir()
    same, edited, gone = tmp_path / "same", tmp_path / "edited", tmp_path / "gone"
    for path in (same, edited, gone):
        path.write_text(f"{path.name}\n")
    lines = subprocess.run(["sha256sum", str(same), str(edited), str(gone)], capture_output=True,
                           text=True, check=True).stdout
    (manifests / "nomad.sha256").write_text(lines)
    edited.write_text("edited by hand\n")
    gone.unlink()
    want = drift.probe_request(["nomad", "consul"], str(manifests))
    seen = observe(want, tmp_path / "cache.json")
    assert seen["nomad"]["manifest"] is True
    assert seen["nomad"]["files"] == {str(same): "ok", str(edited): "changed", str(gone): "missing"}
    assert seen["consul"]["manifest"] is False and seen["consul"]["files"] == {}
    assert seen["nomad"]["active"] != "active"
    # The digests are cached by file status: a file written again (same size) is read again.
    assert set(json.loads((tmp_path / "cache.json").read_text())) == {str(same), str(edited)}
    same.write_text("sXme\n")
    assert observe(want, tmp_path / "cache.json")["nomad"]["files"][str(same)] == "changed"
    same.write_text("same\n")
    assert observe(want, tmp_path / "cache.json")["nomad"]["files"][str(same)] == "ok"


def observe(want: dict[str, Any], cache: Path) -> dict[str, Any]:
    """observe.py run by this host's python3, its digest cache at CACHE."""
    proc = subprocess.run([sys.executable, "-", json.dumps(want)], input=providers.OBSERVE.read_text(),
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "HASHICLUSTER_PROBE_CACHE": str(cache)})
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# --- the providers, with the machine's answers faked


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> list[drift.Drift]:
    """Stands in for ssh_probe: returns the drifts queued in the list, in order."""
    answers: list[drift.Drift] = []
    monkeypatch.setattr(providers, "ssh_probe", lambda connection, products: answers.pop(0))
    return answers


def state_props() -> dict[str, Any]:
    created = providers.AgentStateProvider().create(
        {"name": "client1-state", "connection": {"host": "10.0.0.1"}, "products": PRODUCTS})
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


def test_a_machine_found_stopped_is_booted_by_the_next_update(monkeypatch: pytest.MonkeyPatch) -> None:
    states = ["stopped", "running"]
    booted: list[str] = []
    monkeypatch.setattr(providers, "power_state", lambda props: states.pop(0))  # a fake lab
    monkeypatch.setattr(providers, "boot", lambda props: booted.append(props["boot"]))
    provider = providers.MachinePowerProvider()
    props = {"kind": "nspawn", "name": "lab-client1", "dir": "", "boot": "python3 -m lab up lab-client1"}
    created = provider.create(props).outs
    assert created is not None and created["state"] == "running"
    stopped = provider.read("lab-client1", created).outs
    assert stopped is not None and stopped["state"] == "stopped"
    assert provider.diff("lab-client1", stopped, props).changes is True
    assert booted == []
    up = provider.update("lab-client1", stopped, props).outs
    assert up is not None and up["state"] == "running" and booted == ["python3 -m lab up lab-client1"]
    again = provider.read("lab-client1", up).outs
    assert again == up and provider.diff("lab-client1", again, props).changes is False


def test_new_settings_of_a_running_machine_are_applied_by_its_new_up(monkeypatch: pytest.MonkeyPatch) -> None:
    booted: list[str] = []
    monkeypatch.setattr(providers, "boot", lambda props: booted.append(props["boot"]))  # a fake lab
    provider = providers.MachinePowerProvider()
    old = {"kind": "nspawn", "name": "lab-client1", "dir": "", "boot": "python3 -m lab up lab-client1"}
    new = {**old, "boot": "python3 -m lab up lab-client1 --containers"}
    running = {**old, "state": "running"}
    assert provider.diff("lab-client1", running, old).changes is False
    assert provider.diff("lab-client1", running, new).changes is True
    up = provider.update("lab-client1", running, new).outs
    assert up is not None and up["state"] == "running" and booted == [new["boot"]]


def test_a_machine_found_gone_fails_the_update_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "power_state", lambda props: "gone")  # a fake lab
    provider = providers.MachinePowerProvider()
    props = {"kind": "nspawn", "name": "lab-client1", "dir": "", "boot": "true"}
    gone = provider.read("lab-client1", {**props, "state": "running"}).outs
    assert gone is not None and provider.diff("lab-client1", gone, props).changes is True
    with pytest.raises(RuntimeError, match=r"lab-client1 is gone.*Fix: `pulumi destroy` and `pulumi up`"):
        provider.update("lab-client1", gone, props)


def test_boot_runs_the_machines_up_command_and_names_its_failure(tmp_path: Path) -> None:
    providers.boot({"name": "m", "boot": f"touch {tmp_path}/booted"})
    assert (tmp_path / "booted").exists()
    with pytest.raises(RuntimeError, match=r"m: `echo no >&2; false` failed \(1\): no"):
        providers.boot({"name": "m", "boot": "echo no >&2; false"})
