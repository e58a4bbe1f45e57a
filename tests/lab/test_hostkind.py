"""Unit tests of the host-kind decision and of what each kind runs: no root, no machines.

The mount tables are written out as the kernel shows them on each kind of host; the tests
that check which path `machines` and `clean` take replace the host kind and the systemd
calls with mocks (named mock_*), and record what would have run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import clean, deps, hostkind, machines, units
from lab.cli import parser
from lab.errors import LabError
from lab.mounts import Mount
from lab.paths import Paths

UNIFIED_MOUNTS = [Mount("/", "ext4", "/dev/vda1"), Mount("/sys/fs/cgroup", "cgroup2", "cgroup2")]
HYBRID_MOUNTS = [
    Mount("/sys/fs/cgroup", "tmpfs", "tmpfs"),
    Mount("/sys/fs/cgroup/unified", "cgroup2", "cgroup2"),
    Mount("/sys/fs/cgroup/systemd", "cgroup", "cgroup"),
    Mount("/sys/fs/cgroup/memory", "cgroup", "cgroup"),
]
LEGACY_MOUNTS = [Mount("/sys/fs/cgroup", "tmpfs", "tmpfs"),
                 Mount("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cgroup")]


@pytest.mark.parametrize(("mount_list", "layout"), [
    (UNIFIED_MOUNTS, hostkind.UNIFIED),
    (HYBRID_MOUNTS, hostkind.HYBRID),
    (LEGACY_MOUNTS, hostkind.LEGACY),
    ([Mount("/", "ext4", "/dev/vda1")], hostkind.NONE),
    ([Mount("/sys/fs/cgroup", "tmpfs", "tmpfs"),
      Mount("/sys/fs/cgroup/unified", "cgroup2", "cgroup2")], hostkind.UNIFIED),
])
def test_cgroup_layout(mount_list: list[Mount], layout: str) -> None:
    assert hostkind.cgroup_layout(mount_list) == layout


def test_systemd_host_with_v2_only_runs_machines_as_units(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    (tmp_path / "bus").touch()
    kind = hostkind.detect(tmp_path / "systemd", tmp_path / "bus", UNIFIED_MOUNTS)
    assert kind == hostkind.HostKind(systemd_pid1=True, cgroup_layout="unified", system_bus=True)
    assert kind.manager == hostkind.SYSTEMD
    assert kind.registers_with_machined
    assert "hashicluster-lab-NAME.service" in kind.describe()
    assert "cgroup v2 only" in kind.describe()


def test_host_without_systemd_makes_its_own_cgroups(tmp_path: Path) -> None:
    kind = hostkind.detect(tmp_path / "no-systemd", tmp_path / "no-bus", HYBRID_MOUNTS)
    assert not kind.systemd_pid1
    assert kind.manager == hostkind.OWN_CGROUPS
    assert not kind.registers_with_machined
    assert kind.describe().startswith("systemd is not PID 1, cgroup v1 + v2 (hybrid)")


def test_systemd_on_a_hybrid_host_still_uses_units(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    kind = hostkind.detect(tmp_path / "systemd", tmp_path / "no-bus", HYBRID_MOUNTS)
    assert kind.manager == hostkind.SYSTEMD
    assert not kind.registers_with_machined  # no system bus: machined cannot be asked
    assert "not registered" in kind.describe()


def test_as_dict_names_facts_and_decision() -> None:
    kind = hostkind.HostKind(systemd_pid1=True, cgroup_layout="unified", system_bus=True)
    assert kind.as_dict() == {"systemd_pid1": True, "cgroup_layout": "unified",
                              "system_bus": True, "manager": "systemd",
                              "registers_with_machined": True}


def test_unit_names_round_trip() -> None:
    assert units.unit_name("lab-client1") == "hashicluster-lab-lab-client1.service"
    assert units.machine_of("hashicluster-lab-lab-client1.service") == "lab-client1"
    assert units.machine_of("machine.slice") is None
    assert units.machine_of("ssh.service") is None


def test_run_command_delegates_and_restarts_on_reboot(tmp_path: Path) -> None:
    cmd = units.run_command("m1", ["systemd-nspawn", "--boot"], tmp_path / "console.log", 30)
    assert cmd[0] == "systemd-run"
    assert "--unit=hashicluster-lab-m1.service" in cmd
    assert "--slice=machine.slice" in cmd
    assert "--collect" in cmd
    props = dict(a.removeprefix("--property=").split("=", 1) for a in cmd
                 if a.startswith("--property="))
    assert props["Delegate"] == "yes"
    assert props["KillMode"] == "mixed"
    assert props["RestartForceExitStatus"] == "133"
    assert props["TimeoutStopSec"] == "30s"
    assert props["StandardOutput"] == f"append:{tmp_path / 'console.log'}"
    assert cmd[cmd.index("--") + 1:] == ["systemd-nspawn", "--boot"]


@pytest.mark.parametrize(("register", "flag"), [(True, "--register=yes"), (False, "--register=no")])
def test_nspawn_registers_only_when_asked(tmp_path: Path, register: bool, flag: str) -> None:
    rec = machines.Record(name="m1", address="10.210.9.2", prefix_len=24, hostname="m1",
                          suite="bookworm", base="/b", netns="hcl-m1", veth="vm1")
    cmd = machines.nspawn_command(rec, tmp_path, register)
    assert flag in cmd
    assert "--keep-unit" in cmd


@pytest.fixture
def mock_systemd_host(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The host kind replaced by a systemd host, units.* by recorders: what they were asked."""
    calls: list[tuple[str, str]] = []
    kind = hostkind.HostKind(systemd_pid1=True, cgroup_layout="unified", system_bus=True)
    monkeypatch.setattr(hostkind, "current", lambda: kind)
    monkeypatch.setattr(units, "stop", lambda name, timeout: calls.append(("stop", name)))
    monkeypatch.setattr(units, "lab_machines", lambda: ["from-a-unit"])
    return calls


def test_stop_on_a_systemd_host_stops_the_unit(tmp_path: Path,
                                               mock_systemd_host: list[tuple[str, str]]) -> None:
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state", runtime=tmp_path / "run")
    machines.stop(paths, "m1", timeout=1)
    assert ("stop", "m1") in mock_systemd_host


def test_clean_all_finds_machines_by_their_units(tmp_path: Path,
                                                 mock_systemd_host: list[tuple[str, str]]) -> None:
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state", runtime=tmp_path / "run")
    assert "from-a-unit" in clean.find_machines(paths)


def test_missing_keyring_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(LabError) as err:
        deps.require_debian_keyring(tmp_path / "debian-archive-keyring.gpg")
    assert "apt-get install debian-archive-keyring" in (err.value.fix or "")
    assert deps.missing_packages(["debootstrap"], keyring=tmp_path / "none") == \
        sorted({"debian-archive-keyring"} | set(deps.missing_packages(["debootstrap"])))


def test_systemctl_show_is_read_by_key_not_by_order() -> None:
    found = units.properties("LoadState=loaded\nActiveState=active\nDescription=a = b\n")
    assert found == {"LoadState": "loaded", "ActiveState": "active", "Description": "a = b"}


def test_up_timeout_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHICLUSTER_LAB_UP_TIMEOUT", raising=False)
    assert parser().parse_args(["up", "m1", "--address", "10.210.9.2"]).timeout == 120.0
    monkeypatch.setenv("HASHICLUSTER_LAB_UP_TIMEOUT", "600")
    assert parser().parse_args(["up", "m1", "--address", "10.210.9.2"]).timeout == 600.0
    assert parser().parse_args(["up", "m1", "--address", "10.210.9.2", "--timeout", "5"]).timeout == 5.0
    monkeypatch.setenv("HASHICLUSTER_LAB_UP_TIMEOUT", "soon")
    with pytest.raises(SystemExit):
        parser().parse_args(["up", "m1", "--address", "10.210.9.2"])
