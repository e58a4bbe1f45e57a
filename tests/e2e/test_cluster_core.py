"""Consul and Nomad on the lab cluster: joined, led, ready; one client's change stays its own."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import STACK, Project, on_machine

pytestmark = pytest.mark.e2e

NOMAD = "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646"


def on_server(project: Project, command: str) -> str:
    return on_machine(project, "root-server", command)


def test_consul_has_every_member_alive(project: Project, cluster: dict[str, Any]) -> None:
    members = on_server(project, "consul members")
    rows = [line.split() for line in members.splitlines()[1:]]
    assert sorted((r[0], r[2], r[3]) for r in rows) == sorted([
        ("root", "alive", "server"), ("frontend", "alive", "client"), ("client1", "alive", "client"),
        ("client2", "alive", "client"), ("client3", "alive", "client")]), members
    assert on_server(project, "api $CONSUL_HTTP_ADDR/v1/status/leader").strip('"\n') == \
        "10.210.9.10:8300"


def test_nomad_has_a_leader_and_three_ready_clients(project: Project, cluster: dict[str, Any]) -> None:
    servers = on_server(project, f"{NOMAD} nomad server members")
    assert re.search(r"^root\.global\s+10\.210\.9\.10\s+4648\s+alive\s+true", servers, re.M), servers
    nodes = json.loads(on_server(project, f"{NOMAD} nomad node status -json"))
    assert sorted((n["Name"], n["Status"]) for n in nodes) == [
        ("client1", "ready"), ("client2", "ready"), ("client3", "ready")]


def test_every_client_has_docker_and_nomads_docker_and_exec_drivers_and_no_raw_exec(
        project: Project, cluster: dict[str, Any]) -> None:
    for i in (1, 2, 3):
        client = f"client{i}"
        info = json.loads(on_machine(project, client, "docker info --format '{{json .}}'"))
        assert info["Driver"] == "overlay2" and info["ServerVersion"].startswith("20.10."), info
        own_agent = f"NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.3{i}:4646"  # -self asks the client's agent
        node = json.loads(on_machine(project, client, f"{own_agent} nomad node status -self -verbose -json"))
        drivers = {name: (d["Detected"], d["Healthy"]) for name, d in node["Drivers"].items()}
        assert drivers["docker"] == (True, True), (client, node["Drivers"])
        assert drivers["exec"] == (True, True), (client, node["Drivers"])
        # No job of the stack's list runs without isolation: raw_exec is off.
        assert drivers.get("raw_exec", (False, False))[0] is False, (client, node["Drivers"])
    # The servers carry the package, off: containers run on the clients only.
    assert on_server(project, "systemctl is-enabled docker || true").strip() == "disabled"


def test_nomad_and_consul_are_integrated(project: Project, cluster: dict[str, Any]) -> None:
    services = json.loads(on_server(project, "api $CONSUL_HTTP_ADDR/v1/catalog/services"))
    assert "nomad" in services and "nomad-client" in services, services


def test_agents_run_as_their_own_users(project: Project, cluster: dict[str, Any]) -> None:
    assert on_server(project, "ps -o user= -C consul").split() == ["consul"]
    assert on_server(project, "ps -o user= -C nomad").split() == ["nomad"]


def test_one_client_setting_touches_only_that_client(project: Project, cluster: dict[str, Any]) -> None:
    project.pulumi("config", "set", "--path", "hashicluster:clientSettings.client2.meta.rack", "r2")
    preview = project.pulumi("preview", "--diff", "--json").stdout
    steps = json.loads(preview)["steps"]
    changed = {s["urn"].rsplit("::", 1)[1]: s["op"] for s in steps if s["op"] != "same"}
    # Its Nomad step stages the change, its roll step restarts Nomad (its rejoin step runs with
    # the turn, and finds no reboot to wait for).
    assert changed == {"client2-nomad": "update", "client2-roll": "update",
                       "client2-rejoin": "update"}, changed
    project.timed("one-client change: pulumi up", "up", "--yes", "--skip-preview")
    nodes = json.loads(on_server(project, f"{NOMAD} nomad node status -json"))
    assert sorted((n["Name"], n["Status"]) for n in nodes) == [
        ("client1", "ready"), ("client2", "ready"), ("client3", "ready")]
    client2 = next(n for n in nodes if n["Name"] == "client2")
    detail = json.loads(on_server(project, f"{NOMAD} nomad node status -json {client2['ID']}"))
    assert detail["Meta"]["rack"] == "r2"


def test_wrong_pinned_sha256_stops_before_anything_changes(project: Project,
                                                           cluster: dict[str, Any]) -> None:
    project.pulumi("config", "set", "--path", "hashicluster:nomad.sha256", "0" * 64)
    try:
        proc = project.pulumi("preview", check=False)
        assert proc.returncode != 0
        assert "hashicluster:nomad.sha256: the stack pins 000000" in proc.stdout + proc.stderr
    finally:
        project.pulumi("config", "rm", "--path", "hashicluster:nomad.sha256")


def test_machine_refuses_a_binary_with_the_wrong_sha256(project: Project,
                                                        cluster: dict[str, Any]) -> None:
    """The install script itself: a staged binary that is not the pinned one is not installed."""
    from cluster import install
    from cluster.config import BinaryPin, InstallSpec

    pin = BinaryPin("nomad", "9.9.9", "0" * 64)
    spec = InstallSpec(source="upload", mirror="https://releases.hashicorp.com",
                       consul=pin, nomad=pin, consul_template=pin, cadvisor=pin)
    agent = install.Agent(product="nomad", pin=pin, files=[], user="root", data_dir="/opt/nomad")
    machine = f"{STACK}-client3"
    before = project.lab("ssh", machine, "sha256sum /usr/local/bin/nomad").stdout
    # Uploads arrive packed with gzip: one that does not unpack is refused too.
    project.lab("ssh", machine, f"cp /bin/true {install.staged_path(pin)}")
    proc = project.lab("ssh", machine, install.install_script(agent, spec), check=False)
    assert proc.returncode != 0
    assert "does not unpack (gzip -d); nothing installed" in proc.stderr
    project.lab("ssh", machine, f"gzip -c /bin/true > {install.staged_path(pin)}")
    proc = project.lab("ssh", machine, install.install_script(agent, spec), check=False)
    assert proc.returncode != 0
    assert "nomad 9.9.9: sha256 of the uploaded binary is" in proc.stderr
    assert "nothing installed" in proc.stderr
    assert project.lab("ssh", machine, "sha256sum /usr/local/bin/nomad").stdout == before
