"""Existing machines over SSH: their config, the pre-flight verdicts, the resource graph (under
Pulumi mocks, with the pre-flight replaced by a stand-in named as such)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from cluster import config as cfg
from cluster import preflight, program, sshcmd
from cluster.topology import nodes

from .conftest import fake_binaries, fake_pins
from .mocks import run_program

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIrK9Yrx7M6qaQShiSSNG/pGI+THZ6WBH5J8wtyhjvIL"
BASTION_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBastionBastionBastionBastionBastionBastion1"


def host(address: str, **extra: Any) -> dict[str, Any]:
    return {"address": address, "hostKey": KEY, "user": "deploy", **extra}


def machines(**override: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "provider": "ssh",
        "servers": [host("192.0.2.10", hostKey=cfg.TRUST_ON_FIRST_USE)],
        "loadBalancers": [host("192.0.2.20", sshAddress="203.0.113.20")],
        "clients": [host(f"192.0.2.3{i}", viaBastion=True) for i in (1, 2, 3)],
        "bastion": {"address": "203.0.113.20", "user": "deploy", "hostKey": BASTION_KEY + " root@lb"},
    }
    return {**value, **override}


def stack(**override: Any) -> dict[str, str]:
    return {"machines": json.dumps(machines(**override)), "install": '{"source": "upload"}'}


def load(raw: dict[str, str]) -> cfg.ClusterSpec:
    return cfg.load(raw, "unit", fake_pins)


def test_an_ssh_stack_takes_its_hosts_from_the_lists() -> None:
    spec = load(stack())
    assert (spec.servers, spec.clients) == (1, 3)
    ssh = spec.machines.ssh
    assert ssh is not None and ssh.bastion is not None
    assert ssh.bastion.host_key == BASTION_KEY  # the .pub comment dropped
    assert ssh.servers[0].login.tofu and not ssh.clients[0].login.tofu
    assert ssh.load_balancers[0].login.address == "203.0.113.20"  # SSH goes to sshAddress...
    found = {n.name: n.address for n in nodes(spec)}  # ...the cluster uses its address
    assert found == {"root-server": "192.0.2.10", "frontend-lb": "192.0.2.20", "client1": "192.0.2.31",
                     "client2": "192.0.2.32", "client3": "192.0.2.33"}
    assert [h.via_bastion for h in ssh.clients] == [True, True, True]
    assert ssh.clients[0].login.user == "deploy" and ssh.clients[0].login.port == 22


@pytest.mark.parametrize(("override", "key", "words"), [
    ({"servers": []}, "machines.servers", "list of hosts"),
    ({"loadBalancers": [host("192.0.2.20"), host("192.0.2.21")]}, "machines.loadBalancers", "one front"),
    ({"clients": [host("192.0.2.31"), host("192.0.2.31")]}, "machines.clients[1].address", "listed twice"),
    ({"clients": [host("not-an-ip")]}, "machines.clients[0].address", "IPv4"),
    ({"clients": [{"address": "192.0.2.31"}]}, "machines.clients[0].hostKey", "not set"),
    ({"clients": [host("192.0.2.31", hostKey="ssh-ed25519 !!")]}, "machines.clients[0].hostKey",
     "ssh-keyscan"),
    ({"clients": [host("192.0.2.31", user="Root Admin")]}, "machines.clients[0].user", "user name"),
    ({"clients": [host("192.0.2.31", port=70000)]}, "machines.clients[0].port", "65535"),
    ({"clients": [host("192.0.2.31", privateKeyFile="id_rsa")]}, "machines.clients[0].privateKeyFile",
     "absolute path"),
    ({"clients": [host("192.0.2.31", viaBastion="maybe")]}, "machines.clients[0].viaBastion",
     "true or false"),
    ({"clients": [host("192.0.2.31", color="red")]}, "machines.clients[0].color", "unknown setting"),
    ({"bastion": {"address": "203.0.113.20", "hostKey": cfg.TRUST_ON_FIRST_USE}},
     "machines.bastion.hostKey", "pinned"),
    ({"servers": [host("192.0.2.10"), host("192.0.2.11")]}, "servers", "odd number"),
])
def test_a_bad_host_entry_names_its_key_and_the_fix(override: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        load(stack(**override))
    assert err.value.key == f"hashicluster:{key}" and words in str(err.value) and "Fix:" in str(err.value)


def test_hosts_behind_a_bastion_need_one() -> None:
    raw = machines()
    del raw["bastion"]
    with pytest.raises(cfg.ConfigError, match=r"clients\[0\].viaBastion: no bastion"):
        load({"machines": json.dumps(raw)})


def test_the_counts_of_an_ssh_stack_are_its_lists() -> None:
    assert load({**stack(), "clients": "3"}).clients == 3
    with pytest.raises(cfg.ConfigError, match="does not match the 3 hosts"):
        load({**stack(), "clients": "5"})


# --- the pre-flight verdicts (pure)

GOOD_REPORT = {"pid1": "systemd", "os": {"id": "debian", "id_like": "", "pretty": "Debian 12"},
               "arch": "x86_64", "time": 1000.0, "free": {"/opt": 50000, "/var/lib": 50000},
               "installed": False, "listeners": [
                   {"proto": "tcp", "address": "0.0.0.0", "port": 22, "process": "sshd"},
                   {"proto": "udp", "address": "127.0.0.53", "port": 53, "process": "systemd-resolve"}]}


def verdict(report: dict[str, Any], node: str = "frontend-lb", now: float = 1000.0) -> list[str]:
    spec = load(stack())
    target = next(n for n in nodes(spec) if n.name == node)
    login = next(h for n, h in zip(nodes(spec), spec.machines.ssh.hosts, strict=True)  # type: ignore[union-attr]
                 if n.name == node).login
    return [str(p) for p in preflight.judge(spec, target, login, report, now)]


def test_a_fit_host_has_no_problem() -> None:
    assert verdict(GOOD_REPORT) == []
    assert verdict({**GOOD_REPORT, "arch": "aarch64"}) == []  # arm64 machines are supported


@pytest.mark.parametrize(("change", "words"), [
    ({"pid1": "init"}, "PID 1 is 'init', not systemd"),
    ({"os": {"id": "fedora", "id_like": "rhel", "pretty": "Fedora 40"}}, "Fedora 40 is not Debian-like"),
    ({"arch": "i686"}, "architecture is i686"),
    ({"time": 1030.0}, "clock is +30 s off"),
    ({"free": {"/opt": 100}}, "/opt has 100 MiB free"),
    ({"listeners": [{"proto": "tcp", "address": "0.0.0.0", "port": 5000, "process": "python3"}]},
     "port 5000 (tcp, for the image registry) is taken by python3"),
])
def test_each_unfit_host_names_itself_the_problem_and_the_fix(change: dict[str, Any], words: str) -> None:
    found = verdict({**GOOD_REPORT, **change})
    assert len(found) == 1 and found[0].startswith("frontend-lb (deploy@203.0.113.20:22): ")
    assert words in found[0] and "Fix: " in found[0]


def test_the_clusters_own_services_hold_their_ports_once_installed() -> None:
    ours = [{"proto": "tcp", "address": "192.0.2.20", "port": 80, "process": "nginx"}]
    assert verdict({**GOOD_REPORT, "installed": True, "listeners": ours}) == []
    # ...but an nginx that was there before the cluster is in the way.
    assert "port 80" in verdict({**GOOD_REPORT, "listeners": ours})[0]
    # A listener on another address of the machine is not.
    other = [{"proto": "tcp", "address": "10.9.9.9", "port": 80, "process": "apache2"}]
    assert verdict({**GOOD_REPORT, "listeners": other}) == []


@pytest.mark.parametrize(("code", "stderr", "words"), [
    (1, "sudo: a password is required", "deploy cannot run sudo without a password"),
    (255, "Host key verification failed.", "host key is not the pinned one"),
    (255, "deploy@192.0.2.31: Permission denied (publickey).", "may not log in"),
    (255, "ssh: connect to host 192.0.2.31 port 22: Connection refused",
     "cannot be reached over SSH through"),
    (127, "bash: python3: command not found", "apt-get install python3"),
])
def test_a_failed_look_says_what_failed(code: int, stderr: str, words: str) -> None:
    spec = load(stack())
    ssh = spec.machines.ssh
    assert ssh is not None
    problem = preflight.ssh_failure("client1", ssh.clients[0].login, ssh.bastion, code, stderr)
    assert words in str(problem) and str(problem).startswith("client1 (deploy@192.0.2.31:22)")


def test_ssh_command_lines_pin_the_key_and_jump_through_the_bastion(tmp_path: Path) -> None:
    target = {"host": "192.0.2.31", "port": 22, "user": "deploy", "private_key": "KEY", "host_key": KEY,
              "proxy": {"host": "203.0.113.20", "port": 2222, "user": "jump", "private_key": "",
                        "host_key": BASTION_KEY}}
    argv = sshcmd.ssh_argv(target, tmp_path, sshcmd.as_root("deploy", "true"))
    assert argv[-2:] == ["deploy@192.0.2.31", "sudo -n -- true"]
    assert "StrictHostKeyChecking=yes" in argv
    assert (tmp_path / "target.known_hosts").read_text() == f"192.0.2.31 {KEY}\n"
    assert (tmp_path / "proxy.known_hosts").read_text() == f"[203.0.113.20]:2222 {BASTION_KEY}\n"
    proxy = next(a for a in argv if a.startswith("ProxyCommand="))
    assert "jump@203.0.113.20" in proxy and "-W %h:%p" in proxy
    # A host trusted on first use: the key it shows is accepted and can be read back.
    tofu = sshcmd.ssh_argv({**target, "host_key": "", "proxy": None}, tmp_path, "true")
    assert "StrictHostKeyChecking=accept-new" in tofu and not any(a.startswith("ProxyCommand") for a in tofu)
    (tmp_path / "target.known_hosts").write_text(f"192.0.2.31 {KEY}\n")
    assert sshcmd.recorded_host_key(tmp_path) == KEY


# --- the program's graph under mocks

def preflight_stand_in(spec: cfg.ClusterSpec, found: list[Any]) -> dict[str, preflight.Facts]:
    """Stands in for the pre-flight checks: every host fit, amd64, showing KEY."""
    return {n.name: preflight.Facts(arch="amd64", host_key=KEY) for n in found}


def test_an_ssh_stack_runs_its_steps_through_sudo_and_records_a_first_use_key(key_file: Path) -> None:
    raw = stack()
    machines_ = machines()
    for entry in [*machines_["servers"], *machines_["loadBalancers"], *machines_["clients"]]:
        entry["privateKeyFile"] = str(key_file)
    raw["machines"] = json.dumps(machines_)
    graph = run_program(lambda: program.build(raw, "unit", pins=fake_pins, local_binaries=fake_binaries,
                                              preflight=preflight_stand_in), key_file)
    assert graph.get("client1").type == "hashicluster:machines:SshMachine"
    assert graph.get("root-server-host-key").type.endswith("HostKey")  # only the TOFU host has one
    assert "client1-host-key" not in graph.names()
    assert not any(name.endswith(("-lab", "-power")) for name in graph.names())  # nothing is made
    create = graph.inputs("client1-consul")["create"]
    assert create.startswith("# run as root") and "exec sudo -n -H -- /bin/bash -c" in create
    assert "exec sudo" in graph.inputs("client1-consul")["delete"]
    assert "exec sudo" in graph.inputs("client1-identity")["delete"]
    assert graph.depends_on("client1-consul-upload", "client1-identity")
    # A destroy gives every existing host back: no removal is skipped.
    assert not any(r.type == "hashicluster:index:Teardown" for r in graph.monitor.registrations.values())
    assert not any(r.deleted_with for r in graph.monitor.registrations.values())


def test_unfit_hosts_stop_the_program_before_any_resource(key_file: Path) -> None:
    def unfit(spec: cfg.ClusterSpec, found: list[Any]) -> dict[str, preflight.Facts]:
        raise preflight.PreflightError("1 problem(s): client2 (deploy@192.0.2.32:22): no sudo")
    with pytest.raises(pulumi.RunError, match="client2"):
        program.build(stack(), "unit", pins=fake_pins, local_binaries=fake_binaries, preflight=unfit)


def mixed(spec: cfg.ClusterSpec, found: list[Any]) -> dict[str, preflight.Facts]:
    """Stands in for the pre-flight checks: client3 is an arm64 machine, the rest amd64."""
    return {n.name: preflight.Facts(arch="arm64" if n.name == "client3" else "amd64", host_key=KEY)
            for n in found}


def test_an_arm64_machine_needs_arm64_pins_and_gets_its_own_binary(key_file: Path) -> None:
    raw = {**stack(), "install": '{"source": "release"}'}
    with pytest.raises(pulumi.RunError, match=r"consul.sha256: a machine is arm64.*sha256.arm64"):
        program.build(raw, "unit", pins=fake_pins, local_binaries=fake_binaries, preflight=mixed)
    arm = {p: f'{{"sha256": {{"arm64": "{c * 64}"}}}}' for p, c in
           (("consul", "1"), ("nomad", "2"), ("consulTemplate", "3"), ("cadvisor", "4"))}
    graph = run_program(lambda: program.build({**raw, **arm}, "unit", pins=fake_pins,
                                              local_binaries=fake_binaries, preflight=mixed), key_file)
    arm64 = graph.inputs("client3-consul")["create"]
    amd64 = graph.inputs("client2-consul")["create"]
    assert "1" * 64 in arm64 and "consul_1.14.11_linux_arm64.zip" in arm64
    assert "1" * 64 not in amd64 and "consul_1.14.11_linux_amd64.zip" in amd64
    assert "2" * 64 in graph.inputs("client3-nomad")["create"]
