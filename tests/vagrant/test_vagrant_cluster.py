"""The vagrant provider end to end: real Vagrant, libvirt and QEMU VMs, the real Pulumi CLI.

A stack of three VMs (root server, load balancer, one client) from the project's own box
(`python3 -m vagrantbox add`), with `driver: auto` (plain emulation here: this host has no
usable KVM) and the binaries uploaded from the controller; fib in containers, its image built
on the client and pulled from the registry on the load balancer (plain HTTP: security off).
Checked over SSH: a Consul leader, a ready Nomad client, Consul's names through the machines'
DNS forwarders (systemd-resolved manages the box's resolver), fib's containers and fib through
the load balancer; then a no-op preview; then `pulumi destroy` leaves no libvirt domain, disk
or network of the stack behind.

Where no libvirt daemon runs (this project's test hosts), `python3 -m vagrantbox host up`
starts one in a network namespace of its own; Pulumi and Vagrant run in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Project, project_copy, toolchain_path
from vagrantbox import libvirt, spec

pytestmark = [pytest.mark.vagrant, pytest.mark.e2e]  # a cluster on Vagrant VMs

STACK = "vagrant-e2e"
TIMINGS = Path(os.environ.get("HASHICLUSTER_VAGRANT_TIMINGS", "/tmp/hashicluster-vagrant-timings.json"))
STACK_CONFIG = f"""config:
  hashicluster:domain: demo
  hashicluster:servers: 1
  hashicluster:clients: 1
  hashicluster:machines:
    provider: vagrant
    box: {spec.DEFAULT_NAME}
    driver: auto
    network: 192.168.56.0/24
    cpus: {{server: 1, lb: 1, client: 2}}  # fib's three containers start on the one client
    memory: {{server: 1024, lb: 512, client: 1024}}
  hashicluster:install:
    source: upload
  # The plain demo: this test is about the machines; the lab tests cover security.
  hashicluster:security:
    gossip: false
    tls: false
    acl: false
"""


@dataclass
class VagrantProject(Project):
    """The project copy, its Pulumi and Vagrant run where this host's libvirt networks are."""

    stack: str = STACK
    timings_file: Path = TIMINGS
    runner: tuple[str, ...] = ("python3", "-m", "vagrantbox", "exec", "--")

    def ssh(self, node: str, command: str) -> str:
        """COMMAND on NODE as root, through `vagrant ssh` in the machine's own directory."""
        where = self.path / ".hashicluster" / "vagrant" / STACK / node
        return self.exec("vagrant", "ssh", node, "-c", f"sudo sh -c '{command}'",
                         env={"VAGRANT_CWD": str(where)}).stdout


def stack_leftovers() -> dict[str, list[str]]:
    """What libvirt still has of the stack: domains, disks, networks."""
    prefix = f"{libvirt.DOMAIN_PREFIX}{STACK}-"
    return {
        "domains": [d for d in libvirt.project_domains() if d.startswith(prefix)],
        "volumes": [v for v in libvirt.project_volumes() if v.startswith(prefix)],
        "networks": [n for n in libvirt.networks() if n == f"hashicluster-{STACK}"],
    }


@pytest.fixture(scope="module")
def vagrant_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VagrantProject]:
    toolchain_path()  # fails early, naming the fix, when the toolchain is missing
    subprocess.run(["python3", "-m", "vagrantbox", "host", "up"], cwd=ROOT, check=True)
    # Builds the box when its recipe changed, and adds it when Vagrant lacks this build.
    subprocess.run(["python3", "-m", "vagrantbox", "add"], cwd=ROOT, check=True)
    # VMs of an earlier, interrupted run of this stack would collide with ours.
    if any(stack_leftovers().values()):
        libvirt.host_clean(stop=False)
    path, env = project_copy(tmp_path_factory.mktemp("vagrant-project"), STACK, STACK_CONFIG, "vagrant-e2e")
    proj = VagrantProject(path, env)
    proj.pulumi("stack", "init")
    yield proj
    if not proj.destroyed:
        proj.pulumi("destroy", "--yes", check=False)


@pytest.fixture(scope="module")
def vagrant_cluster(vagrant_project: VagrantProject) -> dict[str, Any]:
    vagrant_project.timed("first pulumi up", "up", "--yes", "--skip-preview")
    return json.loads(vagrant_project.pulumi("stack", "output", "--json").stdout)  # type: ignore[no-any-return]


def test_three_vms_with_their_names_and_addresses(vagrant_project: VagrantProject,
                                                 vagrant_cluster: dict[str, Any]) -> None:
    machines = vagrant_cluster["machines"]
    assert {n: (m["hostname"], m["address"]) for n, m in machines.items()} == {
        "root-server": ("root.server.demo", "192.168.56.10"),
        "frontend-lb": ("frontend.lb.demo", "192.168.56.20"),
        "client1": ("client1.demo", "192.168.56.31"),
    }
    assert sorted(stack_leftovers()["domains"]) == [
        f"hashicluster-{STACK}-{n}" for n in ("client1", "frontend-lb", "root-server")]
    assert vagrant_project.ssh("client1", "hostname -f").strip() == "client1.demo"
    # The private network joins them: the client reaches the server by name.
    assert "1 received" in vagrant_project.ssh("client1", "ping -c1 -W5 root.server.demo")


def test_consul_has_a_leader_and_every_member(vagrant_project: VagrantProject,
                                              vagrant_cluster: dict[str, Any]) -> None:
    leader = vagrant_project.ssh("root-server", "curl -sf http://127.0.0.1:8500/v1/status/leader")
    assert json.loads(leader) == "192.168.56.10:8300"
    members = json.loads(vagrant_project.ssh("root-server", "curl -sf http://127.0.0.1:8500/v1/agent/members"))
    # Agents are named by short hostname; status 1 is "alive".
    assert sorted((m["Name"], m["Status"]) for m in members) == [("client1", 1), ("frontend", 1), ("root", 1)]


def test_nomad_has_a_ready_client(vagrant_project: VagrantProject, vagrant_cluster: dict[str, Any]) -> None:
    nodes = json.loads(vagrant_project.ssh("root-server", "curl -sf http://192.168.56.10:4646/v1/nodes"))
    assert [(n["Name"], n["Status"]) for n in nodes] == [("client1", "ready")]


def test_consul_names_resolve_through_systemd_resolved_and_dnsmasq(vagrant_project: VagrantProject,
                                                                   vagrant_cluster: dict[str, Any]) -> None:
    found = vagrant_project.ssh("client1", "getent hosts consul.service.consul").split()
    assert found[:2] == ["192.168.56.10", "consul.service.consul"], found


def test_fib_runs_in_containers_and_answers_through_the_load_balancer(
        vagrant_project: VagrantProject, vagrant_cluster: dict[str, Any]) -> None:
    names = vagrant_project.ssh("client1", "docker ps --filter label=com.hashicorp.nomad.job_name=fib "
                                "--format {{.Image}}").split()
    assert len(names) == 3 and all(n.startswith("frontend.lb.demo:5000/fib:") for n in names), names
    answer = json.loads(vagrant_project.ssh("root-server", "curl -sf -m 10 http://frontend.lb.demo/fib/10"))
    assert (answer["fib"], answer["host"]) == (55, "client1.demo"), answer


def test_second_preview_changes_nothing(vagrant_project: VagrantProject,
                                        vagrant_cluster: dict[str, Any]) -> None:
    start = time.monotonic()
    vagrant_project.pulumi("preview", "--expect-no-changes")
    vagrant_project.timings["no-op preview"] = round(time.monotonic() - start, 1)


def test_destroy_leaves_no_domain_disk_or_network(vagrant_project: VagrantProject,
                                                  vagrant_cluster: dict[str, Any]) -> None:
    vagrant_project.timed("pulumi destroy", "destroy", "--yes")
    vagrant_project.destroyed = True
    assert stack_leftovers() == {"domains": [], "volumes": [], "networks": []}
    assert not (vagrant_project.path / ".hashicluster" / "vagrant" / STACK / "root-server").exists()
