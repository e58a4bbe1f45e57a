"""Drift on the shared lab cluster: changes made behind the program's back are shown by
`pulumi refresh`, on the machines concerned and nowhere else, and repaired by the next
`pulumi up` with fib answering through the load balancer all along; then the preview is
empty again.

Two rounds: first five drifts that leave the load balancer serving (so the repair can be
watched under load), then the load balancer's own nginx stopped."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bench.eventlog import parse_lines
from review.summary import CREATED, DELETED, REPLACED, summarize

from ..waiting import wait_until
from .conftest import STACK, Project, on_machine
from .load import load

pytestmark = pytest.mark.e2e

LB = "10.210.9.20"
CLIENT3 = "10.210.9.33"
EDITED = "/etc/nomad.d/client.hcl"


def outputs_by_name(project: Project, suffix: str) -> dict[str, dict[str, Any]]:
    """The outputs of the resources named MACHINE-SUFFIX in the state, by machine."""
    state = json.loads(project.pulumi("stack", "export").stdout)
    return {r["urn"].rsplit("::", 1)[-1].removesuffix(f"-{suffix}"): r.get("outputs", {})
            for r in state["deployment"]["resources"] if r["urn"].endswith(f"-{suffix}")}


def drift_found(project: Project) -> dict[str, dict[str, list[str]]]:
    """Per machine, what its drift probe recorded (machines with nothing drifted left out)."""
    return {machine: outs["drift"] for machine, outs in outputs_by_name(project, "state").items()
            if outs.get("drift")}


def preview_machines(project: Project) -> set[str]:
    """The machines on which the next `pulumi up` may run steps. It creates and deletes nothing;
    it replaces only uploads (the binary of a drifted product is copied again). On a drifted
    machine the preview lists every step: which ones run is known only when the up looks again."""
    summary = summarize(project.pulumi("preview", "--json").stdout)
    for categories in summary.machines.values():
        assert not {CREATED, DELETED} & set(categories), summary.machines
        assert all(name.endswith("-upload") for name in categories.get(REPLACED, [])), \
            {m: c.get(REPLACED) for m, c in summary.machines.items()}
    return set(summary.machines)


def up_steps(project: Project) -> set[str]:
    """`pulumi up`, and the steps it ran (from its engine event log)."""
    log = project.path / f".drift-up-{time.monotonic_ns()}.events"
    project.exec("pulumi", "up", "--yes", "--skip-preview", "--stack", STACK, "--non-interactive",
                 "--event-log", str(log), env={"PULUMI_DEBUG_COMMANDS": "true"})
    return {step.name for step in parse_lines(log.read_text().splitlines()).changed_steps()}


def status(project: Project) -> tuple[int, dict[str, Any]]:
    """`python3 -m cluster.status --json` (what `./run status` runs): its exit status and report."""
    proc = project.exec("venv/bin/python", "-m", "cluster.status", "--stack", STACK, "--json", check=False)
    return proc.returncode, json.loads(proc.stdout)


def active(project: Project, machine: str, unit: str) -> str:
    return on_machine(project, machine, f"systemctl is-active {unit}", check=False).strip()


def test_refresh_shows_each_drift_and_up_repairs_it_under_load(project: Project,
                                                                  cluster: dict[str, Any]) -> None:
    project.pulumi("preview", "--refresh", "--expect-no-changes")  # a clean cluster shows nothing
    on_machine(project, "client1", "systemctl stop consul")
    on_machine(project, "client2", f"systemctl disable --quiet cadvisor; echo '# edited by hand' >> {EDITED}")
    on_machine(project, "frontend-lb", "rm /usr/local/bin/consul-template")
    project.lab("stop", f"{STACK}-client3", "--timeout", "0")  # a power cut: SIGKILL, no shutdown

    project.pulumi("refresh", "--yes")
    found = drift_found(project)
    assert set(found) == {"client1", "client2", "client3", "frontend-lb"}, found
    assert found["client1"] == {"consul": ["consul stopped (inactive)"]}
    assert found["client2"] == {"cadvisor": ["cadvisor not enabled (disabled)"],
                                "nomad": [f"{EDITED} changed"]}
    assert found["frontend-lb"] == {"consul-template": ["/usr/local/bin/consul-template missing"]}
    assert list(found["client3"]) == ["machine"] and "unreachable" in found["client3"]["machine"][0]
    power = {m: outs["state"] for m, outs in outputs_by_name(project, "power").items()}
    assert power == {"root-server": "running", "frontend-lb": "running", "client1": "running",
                     "client2": "running", "client3": "stopped"}
    code, report = status(project)
    assert code == 1 and not report["healthy"], report["problems"]
    assert report["drift"]["machines"]["client2"]["nomad"] == [f"{EDITED} changed"], report["drift"]

    # The review: the drifted machines, and no other.
    assert preview_machines(project) == {"client1", "client2", "client3", "frontend-lb"}

    with load(project, LB) as result:
        ran = up_steps(project)
    print(f"drift repaired under load: {result}; steps run: {sorted(ran)}")
    assert result.failed == 0, result
    assert result.during > 0, result
    # What ran: the drifted products' steps (their uploads, their machines' roll and rejoin
    # step), client3's power (which booted it); nothing on the root server, nothing else on the
    # other machines.
    assert {"client1-state", "client1-consul", "client1-consul-upload", "client1-roll",
            "client1-rejoin"} <= ran
    assert {"client2-state", "client2-nomad", "client2-nomad-upload", "client2-cadvisor",
            "client2-cadvisor-upload", "client2-roll", "client2-rejoin"} <= ran
    assert {"frontend-lb-state", "frontend-lb-consul-template", "frontend-lb-consul-template-upload"} <= ran
    assert {"client3-power", "client3-state"} <= ran and "client3-lab" not in ran
    assert not {name for name in ran if not name.startswith("client3-")} - {
        "client1-state", "client1-consul", "client1-consul-upload", "client1-roll", "client1-rejoin",
        "client2-state", "client2-nomad", "client2-nomad-upload", "client2-cadvisor",
        "client2-cadvisor-upload", "client2-roll", "client2-rejoin",
        "frontend-lb-state", "frontend-lb-consul-template", "frontend-lb-consul-template-upload"}, ran

    assert active(project, "client1", "consul") == "active"
    assert on_machine(project, "client2", "systemctl is-enabled cadvisor").strip() == "enabled"
    assert "edited by hand" not in on_machine(project, "client2", f"cat {EDITED}")
    assert on_machine(project, "frontend-lb", "consul-template -version 2>&1").startswith("consul-template v")
    assert active(project, "client3", "nomad") == "active"
    project.pulumi("preview", "--refresh", "--expect-no-changes")
    assert not drift_found(project)
    wait_until("./run status healthy again (fib back to its instances, the nodes ready)",
               lambda: status(project)[0] == 0, state=lambda: status(project)[1]["problems"])


def test_a_stopped_load_balancer_is_started_again(project: Project, cluster: dict[str, Any]) -> None:
    on_machine(project, "frontend-lb", "systemctl stop nginx")
    project.pulumi("refresh", "--yes")
    assert drift_found(project) == {"frontend-lb": {"nginx": ["nginx stopped (inactive)"]}}
    assert preview_machines(project) == {"frontend-lb"}
    assert up_steps(project) == {"frontend-lb-state", "frontend-lb-nginx"}
    answer = json.loads(project.exec("curl", "-sf", "-m", "5", f"http://{LB}/fib/10").stdout)
    assert answer["fib"] == 55, answer
    project.pulumi("preview", "--refresh", "--expect-no-changes")
