"""From nothing to five lab machines with one `pulumi up`, and back to nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import STACK, Project, lab_machines, run

pytestmark = pytest.mark.e2e

NODES = {
    "root-server": ("root.server.demo", "10.210.9.10"),
    "frontend-lb": ("frontend.lb.demo", "10.210.9.20"),
    "client1": ("client1.demo", "10.210.9.31"),
    "client2": ("client2.demo", "10.210.9.32"),
    "client3": ("client3.demo", "10.210.9.33"),
}


def ssh(project: Project, node: str, command: str) -> str:
    return project.lab("ssh", f"{STACK}-{node}", command).stdout.strip()


def test_up_creates_five_running_machines(project: Project, cluster: dict[str, Any]) -> None:
    assert lab_machines(project) == sorted(f"{STACK}-{n}" for n in NODES)
    assert {name: (m["hostname"], m["address"]) for name, m in cluster["machines"].items()} == NODES


@pytest.mark.parametrize("node", sorted(NODES))
def test_machine_answers_ssh_with_systemd(project: Project, cluster: dict[str, Any], node: str) -> None:
    state = ssh(project, node, "systemctl is-system-running || true")
    assert state in ("running", "degraded"), state
    assert ssh(project, node, "cat /proc/1/comm") == "systemd"
    hostname, address = NODES[node]
    assert ssh(project, node, "hostname") == hostname
    assert address in ssh(project, node, "ip -4 -o addr show dev eth0")


@pytest.mark.parametrize("node", sorted(NODES))
def test_machine_resolves_every_other_by_hostname(project: Project, cluster: dict[str, Any],
                                                  node: str) -> None:
    for hostname, address in NODES.values():
        assert ssh(project, node, f"getent hosts {hostname}").split()[0] == address
    other = "client3" if node != "client3" else "client1"
    # ... and reaches another machine by that name, over the lab network.
    probe = f"timeout 3 bash -c '</dev/tcp/{NODES[other][0]}/22' && echo open"
    assert ssh(project, node, probe) == "open"


def test_second_up_changes_nothing(project: Project, cluster: dict[str, Any]) -> None:
    project.timed("no-op pulumi preview", "preview", "--expect-no-changes")
    out = project.timed("no-op pulumi up", "up", "--yes", "--expect-no-changes").stdout
    assert re.search(r"\b\d+ unchanged\b", out), out


def leftovers(project: Project) -> dict[str, list[str]]:
    """Everything of this stack's machines that could outlive them."""
    prefix = f"hcl-{STACK}-"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if f"/{STACK}-" in line.split()[1] and "hashicluster" in line.split()[1]]
    netns = [n for n in run(["ip", "netns", "list"]).stdout.split() if n.startswith(prefix)]
    procs = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"systemd-nspawn") and any(f"{STACK}-".encode() in a for a in args):
            procs.append(cmdline.parent.name)
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/hashicluster-lab/{STACK}-*")]
    status = json.loads(project.lab("status", "--json").stdout)
    machines = [m["name"] for m in status if m["name"].startswith(f"{STACK}-")]
    return {"machines": machines, "mounts": mounts, "netns": netns, "nspawn processes": procs,
            "cgroups": cgroups}


@pytest.mark.destroys_cluster
def test_destroy_leaves_nothing_behind(project: Project, cluster: dict[str, Any]) -> None:
    assert any(leftovers(project).values()), "the cluster should exist before destroy"
    project.timed("pulumi destroy", "destroy", "--yes")
    project.destroyed = True
    assert leftovers(project) == {"machines": [], "mounts": [], "netns": [], "nspawn processes": [],
                                  "cgroups": []}
