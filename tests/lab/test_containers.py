"""A lab machine with `up --containers` runs Docker as a VM would: an image imported from a
local root file system, a container with a memory limit that holds, a published port that
answers on the lab switch, and nothing left behind by `down`. The machine is made without the
setting and given it while it runs: it asks for a reboot, and has it after one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import machines

from ..waiting import wait_until
from .conftest import ROOT, Lab, needs_root_and_nspawn

NAME, ADDRESS = "lt-dock", "10.210.250.21"
PORT = 8081
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def dock(lab: Lab) -> Iterator[dict[str, Any]]:
    """The machine, made without --containers and given them while it runs, then rebooted from
    inside as a user would; what was seen on the way is in the dict's "converted" entry."""
    lab.run("up", NAME, "--address", ADDRESS)
    before = {"boot": _boot_id(lab), "net_admin": _has_net_admin(lab)}
    info = json.loads(lab.run("up", NAME, "--address", ADDRESS, "--containers").stdout)
    mark = lab.ssh(NAME, "cat /run/reboot-required")
    lab.run("ssh", NAME, "systemctl reboot", check=False)  # the connection drops with the machine
    wait_until(f"{NAME} booted again", lambda: _boot_id(lab, check=False) not in ("", before["boot"]),
               poll=0.2)
    yield {**info, "converted": {**before, "mark": mark}}
    lab.run("down", NAME, check=False)


def _boot_id(lab: Lab, check: bool = True) -> str:
    """The machine's boot ID ('' while it cannot be reached, unless CHECK)."""
    got = lab.run("ssh", NAME, "cat /proc/sys/kernel/random/boot_id", check=check)
    return got.stdout.strip() if got.returncode == 0 else ""


def _has_net_admin(lab: Lab) -> bool:
    """True if the machine's processes may have CAP_NET_ADMIN (bit 12 of the bounding set)."""
    bounding = lab.ssh(NAME, "awk '/^CapBnd/ { print $2 }' /proc/self/status")
    return bool(int(bounding, 16) >> 12 & 1)


def _docker_json(lab: Lab, command: str) -> Any:
    """The JSON a `docker ... --format '{{json .}}'` command prints in the machine."""
    return json.loads(lab.ssh(NAME, command))


def _answers_on_the_switch(lab: Lab, url: str) -> bool:
    """True once URL answers 200 to a client on the lab switch (tests run in the host's
    network namespace, which has no route into the lab)."""
    curl = lab.run("exec", "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null",
                   "-w", "%{http_code}", url, check=False)
    return curl.stdout.strip() == "200"


@pytest.mark.lab
@needs_root_and_nspawn
def test_docker_runs_containers_with_limits_and_published_ports(lab: Lab, dock: dict[str, Any]) -> None:
    lab.ssh(NAME, "systemctl enable --now docker")
    info = _docker_json(lab, "docker info --format '{{json .}}'")
    assert info["Driver"] == "overlay2", info["Driver"]  # /var/lib/docker is not on the overlay root
    assert info["CgroupVersion"] in ("1", "2")
    # The image: the machine's own Debian root file system (no registry on the internet)
    record = json.loads((lab.state / "machines" / NAME / "machine.json").read_text())
    tar = subprocess.Popen(["tar", "-C", record["base"], "-c", "--exclude=./usr/share/doc", "."],
                           stdout=subprocess.PIPE)
    imported = subprocess.run(["python3", "-m", "lab", "ssh", NAME, "docker import - lt-base:1"],
                              stdin=tar.stdout, cwd=ROOT, env=lab.env, capture_output=True, text=True,
                              check=False, timeout=300)
    assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith("sha256:")

    lab.ssh(NAME, f"docker run -d --name web -m 64m -p {PORT}:8000 lt-base:1 "
                  "python3 -m http.server 8000 --directory /etc")
    wait_until(f"the container's published port on {ADDRESS}:{PORT}",
               lambda: _answers_on_the_switch(lab, f"http://{ADDRESS}:{PORT}/hostname"), poll=0.2)
    assert _docker_json(lab, "docker inspect --format '{{json .HostConfig.Memory}}' web") == 64 * MIB
    # the limit is the cgroup's: docker stats reads it back from the controller
    stats = _docker_json(lab, "docker stats --no-stream --format '{{json .}}' web")
    assert stats["MemUsage"].endswith("/ 64MiB"), stats["MemUsage"]
    lab.ssh(NAME, "docker rm -f web")


@pytest.mark.lab
@needs_root_and_nspawn
def test_a_running_machine_given_containers_gets_them_at_its_next_reboot(
        lab: Lab, dock: dict[str, Any]) -> None:
    converted = dock["converted"]
    assert not converted["net_admin"]
    assert "System restart required" in converted["mark"]
    assert _has_net_admin(lab)
    assert lab.run("ssh", NAME, "test -e /run/reboot-required", check=False).returncode == 1
    record = json.loads((lab.state / "machines" / NAME / "machine.json").read_text())
    assert record["containers"] is True
    assert record["sysctls"]["net.ipv4.ip_forward"] == "1"


@pytest.mark.lab
@needs_root_and_nspawn
def test_down_leaves_nothing_of_a_machine_that_ran_containers(lab: Lab, dock: dict[str, Any]) -> None:
    lab.ssh(NAME, "docker run -d --name idle lt-base:1 sleep infinity")  # running when it goes
    lab.run("down", NAME)
    assert not (lab.state / "machines" / NAME).exists()
    left = lab.leftovers([NAME])
    assert all(found == [] for found in left.values()), left


def test_only_a_containers_machine_gets_the_capability_the_bind_and_forwarding() -> None:
    def record(containers: bool) -> machines.Record:
        return machines.Record(name="m1", address="10.210.250.30", prefix_len=16, hostname="m1",
                               suite="bookworm", base="/b", netns="hcl-m1", veth="ve-m1",
                               containers=containers)

    root = Path("/state/machines/m1/root")
    plain = machines.nspawn_command(record(False), root, register=False)
    boxes = machines.nspawn_command(record(True), root, register=False)
    assert "--capability=CAP_NET_ADMIN" not in plain and not any("docker" in a for a in plain)
    assert set(boxes) - set(plain) == {"--capability=CAP_NET_ADMIN", "--system-call-filter=@keyring",
                                       "--bind=/state/machines/m1/docker:/var/lib/docker"}
