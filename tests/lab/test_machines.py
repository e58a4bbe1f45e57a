"""The real lab tool: two machines that boot systemd, talk to each other and go away cleanly."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ..waiting import wait_until
from .conftest import Lab, inside_lab_switch, needs_root_and_nspawn

pytestmark = [pytest.mark.lab, needs_root_and_nspawn]

MACHINES = {"lt-alpha": "10.210.250.11", "lt-beta": "10.210.250.12"}


@pytest.fixture(scope="module")
def pair(lab: Lab) -> Iterator[dict[str, dict[str, Any]]]:
    infos = lab.up_parallel(MACHINES)
    yield infos
    for name in MACHINES:
        lab.run("down", name, check=False)


def test_up_prints_how_to_reach_the_machine(lab: Lab, pair: dict[str, dict[str, Any]]) -> None:
    for name, info in pair.items():
        assert info["name"] == name
        assert info["address"] == MACHINES[name]
        assert (info["user"], info["ssh_port"]) == ("root", 22)
        assert info["private_key_path"] == str(lab.state / "ssh" / "id_ed25519")
        assert info["host_key_public"].startswith("ssh-ed25519 ")
        known = (lab.state / "ssh" / "known_hosts").read_text()
        assert f"{info['address']} {' '.join(info['host_key_public'].split()[:2])}" in known


def test_machines_run_systemd_with_their_own_identity(lab: Lab, pair: dict[str, Any]) -> None:
    ids = set()
    for name, address in MACHINES.items():
        state, init, hostname, addr, etc_id, dbus_id = lab.ssh(name, " && ".join([
            "systemctl is-system-running", "cat /proc/1/comm", "hostname",
            "ip -4 -o addr show dev eth0 | awk '{print $4}'",
            "cat /etc/machine-id /var/lib/dbus/machine-id"])).splitlines()
        assert state in ("running", "degraded")
        assert (init, hostname, addr) == ("systemd", name, f"{address}/16")
        assert etc_id == dbus_id
        ids.add(etc_id)
    assert len(ids) == len(MACHINES)


def test_machines_may_call_bpf(lab: Lab, pair: dict[str, Any]) -> None:
    """bpf(2) reaches the kernel (cgroup v2 device rules need it): an unknown command gets
    EINVAL from the kernel, where nspawn's default seccomp filter would answer EPERM."""
    probe = ("python3 -c 'import ctypes, errno; libc = ctypes.CDLL(None, use_errno=True); "
             "libc.syscall(321, 9999, 0, 0); print(errno.errorcode[ctypes.get_errno()])'")
    assert lab.ssh("lt-alpha", probe) == "EINVAL"


def test_machines_reach_each_other_but_nothing_outside(lab: Lab, pair: dict[str, Any]) -> None:
    probe = "timeout 3 bash -c '</dev/tcp/{}/22' && echo open"
    assert lab.ssh("lt-alpha", probe.format(MACHINES["lt-beta"])) == "open"
    assert lab.ssh("lt-beta", probe.format(MACHINES["lt-alpha"])) == "open"
    assert lab.ssh("lt-alpha", "ip route").splitlines() == [
        "10.210.0.0/16 dev eth0 proto kernel scope link src 10.210.250.11"]


def test_hostname_and_hosts_can_be_changed_inside(lab: Lab, pair: dict[str, Any]) -> None:
    out = lab.ssh("lt-beta", "hostname lt-beta.test && hostname && "
                  "echo '10.210.250.11 alpha.test' >> /etc/hosts && getent hosts alpha.test")
    assert out.splitlines() == ["lt-beta.test", "10.210.250.11   alpha.test"]
    lab.ssh("lt-beta", "hostname lt-beta")


def running_pid(lab: Lab, name: str) -> int:
    rows = {r["name"]: r for r in json.loads(lab.run("status", "--json").stdout)}
    assert rows[name]["running"] is True, rows[name]
    return int(rows[name]["pid"])


def test_up_again_is_idempotent(lab: Lab, pair: dict[str, dict[str, Any]]) -> None:
    """`up` of a running machine changes nothing: same answer, same machine, not rebooted (a
    file in its /run, a tmpfs, is still there)."""
    pid = running_pid(lab, "lt-alpha")
    lab.ssh("lt-alpha", "touch /run/lt-before-up-again")
    again = json.loads(lab.run("up", "lt-alpha", "--address", MACHINES["lt-alpha"]).stdout)
    assert again == pair["lt-alpha"]
    assert running_pid(lab, "lt-alpha") == pid
    assert lab.ssh("lt-alpha", "ls /run/lt-before-up-again") == "/run/lt-before-up-again"


def test_a_machine_made_again_at_its_address_is_reachable_at_once(lab: Lab, pair: dict[str, Any]) -> None:
    """The same address keeps the same MAC, so the peers' ARP entries stay right."""
    show_mac = "ip -o link show eth0 | grep -o 'link/ether [0-9a-f:]*'"
    mac = lab.ssh("lt-beta", show_mac)
    assert mac == "link/ether 02:68:63:d2:fa:0c"  # from 10.210.250.12
    probe = "timeout 3 bash -c '</dev/tcp/{}/22' && echo open".format(MACHINES["lt-beta"])
    assert lab.ssh("lt-alpha", probe) == "open"  # lt-alpha now holds an ARP entry for lt-beta
    lab.run("down", "lt-beta")
    pair["lt-beta"] = json.loads(lab.run("up", "lt-beta", "--address", MACHINES["lt-beta"]).stdout)
    assert lab.ssh("lt-beta", show_mac) == mac
    assert lab.ssh("lt-alpha", probe) == "open"


def test_bad_input_is_refused_before_anything_is_made(lab: Lab, pair: dict[str, Any]) -> None:
    taken = lab.run("up", "lt-gamma", "--address", MACHINES["lt-beta"], check=False)
    assert taken.returncode == 1
    assert "already used by the lab machine 'lt-beta'" in taken.stderr
    outside = lab.run("up", "lt-gamma", "--address", "192.168.1.5", check=False)
    assert outside.returncode == 1 and "outside the lab network" in outside.stderr
    bad = lab.run("up", "LT_Gamma", "--address", "10.210.250.13", check=False)
    assert bad.returncode == 1 and "invalid machine name" in bad.stderr
    assert not (lab.state / "machines" / "lt-gamma").exists()


def test_status_lists_running_machines(lab: Lab, pair: dict[str, Any]) -> None:
    rows = {r["name"]: r for r in json.loads(lab.run("status", "--json").stdout)}
    for name, address in MACHINES.items():
        assert rows[name]["running"] is True
        assert rows[name]["address"] == address
        assert isinstance(rows[name]["pid"], int)


def test_power_tells_running_from_gone(lab: Lab, pair: dict[str, Any]) -> None:
    """machines.power, what the drift probe's power resource asks once per machine per refresh."""
    from lab import machines
    from lab.paths import Paths

    paths = Paths(cache=Paths.from_env().cache, state=lab.state, runtime=lab.runtime)
    assert {name: machines.power(paths, name) for name in MACHINES} == dict.fromkeys(MACHINES, "running")
    assert machines.power(paths, "lt-never-made") == "gone"


def test_exec_runs_in_the_lab_network(lab: Lab, pair: dict[str, Any]) -> None:
    res = lab.run("exec", "--", "sh", "-c", "cat; ip -4 -o addr show dev br-lab; exit 3",
                  input_text="piped\n", check=False)
    assert res.returncode == 3
    assert res.stdout.startswith("piped\n")
    assert "10.210.0.1/16" in res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode().strip())


def _wait_for_http(url: str) -> str:
    """The body at URL once something answers there."""
    bodies: list[str] = []

    def answers() -> bool:
        bodies.append(_get(url))  # OSError while nothing answers
        return True

    wait_until(f"an HTTP answer at {url}", answers, poll=0.1, ignore=(OSError,))
    return bodies[-1]


def test_forward_reaches_a_machine_from_the_host(lab: Lab, pair: dict[str, Any]) -> None:
    if inside_lab_switch():
        pytest.skip("forwards serve the host's network namespace; this test runs in hcl-lab")
    lab.ssh("lt-alpha", "systemd-run --unit lt-web python3 -m http.server 8080 "
            "--directory /etc >/dev/null")
    port = _free_port()
    lab.run("forward", str(port), f"{MACHINES['lt-alpha']}:8080")
    try:
        assert f"127.0.0.1:{port} -> 10.210.250.11:8080" in lab.run("forward", "--list").stdout
        assert _wait_for_http(f"http://127.0.0.1:{port}/hostname") == "lt-alpha"
    finally:
        lab.run("forward", "--stop", str(port))
    assert lab.run("forward", "--list").stdout == ""
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_each_owner_stops_only_its_own_forwards(lab: Lab, pair: dict[str, Any]) -> None:
    """Two stacks' forwards side by side: stopping one stack's leaves the other's serving."""
    if inside_lab_switch():
        pytest.skip("forwards serve the host's network namespace; this test runs in hcl-lab")
    ports = {"stack-a": _free_port(), "stack-b": _free_port()}
    for owner, port in ports.items():
        lab.run("forward", "--owner", owner, str(port), f"{MACHINES['lt-alpha']}:22")
    try:
        listed = json.loads(lab.run("forward", "--list", "--json").stdout)
        assert {(r["owner"], r["local_port"]) for r in listed} == set(ports.items())
        taken = lab.run("forward", "--owner", "stack-b", str(ports["stack-a"]),
                        f"{MACHINES['lt-alpha']}:22", check=False)
        assert taken.returncode != 0 and "for stack-a" in taken.stderr
        lab.run("forward", "--stop", "--owner", "stack-a")
        listed = json.loads(lab.run("forward", "--list", "--json").stdout)
        assert [(r["owner"], r["local_port"]) for r in listed] == [("stack-b", ports["stack-b"])]
        with socket.create_connection(("127.0.0.1", ports["stack-b"]), timeout=10) as conn:
            assert conn.recv(64).startswith(b"SSH-2.0-"), "stack-b's forward still reaches sshd"
    finally:
        lab.run("forward", "--stop")
    assert lab.run("forward", "--list").stdout == ""


def test_down_leaves_nothing_and_is_idempotent(lab: Lab) -> None:
    lab.up_parallel({"lt-delta": "10.210.250.14"})
    assert any(lab.leftovers(["lt-delta"]).values())
    lab.run("down", "lt-delta")
    assert lab.leftovers(["lt-delta"]) == {"netns": [], "mounts": [], "processes": [],
                                           "cgroups": [], "machine dirs": []}
    lab.run("down", "lt-delta")


def _route_through_link() -> list[dict[str, Any]]:
    routes = subprocess.run(["ip", "-j", "route", "show", "10.210.0.0/16"], capture_output=True, text=True,
                            check=True).stdout
    return [r for r in json.loads(routes or "[]") if r.get("dev") == "hcl-host"]


def _ssh_banner(address: str) -> bytes:
    """The first bytes an sshd says, connecting from this process's network namespace."""
    with socket.create_connection((address, 22), timeout=5) as conn:
        return conn.recv(16)


@pytest.mark.skipif(inside_lab_switch(), reason="runs in the host's network namespace, not the switch's")
def test_the_hosts_link_reaches_the_lab_from_the_host_and_goes_away(lab: Lab, pair: dict[str, Any]) -> None:
    had = bool(_route_through_link())  # `./run up` of a lab stack made it already
    lab.run("link", "up")
    lab.run("link", "up")  # idempotent
    try:
        assert len(_route_through_link()) == 1
        assert "10.210.0.0/16 dev hcl-host" in lab.run("link", "status").stdout
        assert _ssh_banner(MACHINES["lt-alpha"]).startswith(b"SSH-")  # no `lab exec`: straight from here
    finally:
        if not had:
            lab.run("link", "down")
    if not had:  # (no connection tried then: without the link it would leave for the host's gateway)
        assert _route_through_link() == [] and "no link" in lab.run("link", "status").stdout
