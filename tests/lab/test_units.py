"""Pure unit tests of the lab tool: no root, no machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import base, forward, mounts, sshkeys
from lab.cli import parser
from lab.errors import LabError
from lab.names import (
    IFNAMSIZ,
    check_address,
    check_hostname,
    check_name,
    check_prefix_len,
    netns_name,
    veth_name,
)
from lab.paths import Paths


@pytest.mark.parametrize("name", ["a", "lab-client1", "lab-root-server", "e2e-frontend-lb",
                                  "0", "a" * 40, "x-1-y"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "lab_client", "-a", "a-", "a" * 41, "a.b", "a b",
                                  "café", "lab"])
def test_invalid_names_say_what_to_do(name: str) -> None:
    with pytest.raises(LabError) as err:
        check_name(name)
    assert err.value.fix
    assert repr(name) in err.value.problem


@pytest.mark.parametrize("address", ["10.210.1.11", "10.210.1.0", "10.210.9.33",
                                     "10.210.255.254", "10.210.1.255"])
def test_valid_addresses(address: str) -> None:
    assert str(check_address(address)) == address


@pytest.mark.parametrize(("address", "prefix_len", "reason"), [
    ("10.211.1.1", 16, "outside the lab network"),
    ("192.168.1.1", 16, "outside the lab network"),
    ("10.210.0.1", 16, "reserves"),
    ("10.210.0.50", 16, "reserves"),
    ("10.210.255.255", 16, "broadcast"),
    ("10.210.1.0", 24, "network or broadcast"),
    ("10.210.1.255", 24, "network or broadcast"),
    ("10.210.1", 16, "not an IPv4 address"),
    ("fe80::1", 16, "not an IPv4 address"),
])
def test_invalid_addresses(address: str, prefix_len: int, reason: str) -> None:
    with pytest.raises(LabError, match=reason) as err:
        check_address(address, prefix_len)
    assert "10.210.1.11" in (err.value.fix or "")


@pytest.mark.parametrize("prefix_len", [8, 15, 31, 32])
def test_prefix_len_must_keep_the_subnet_inside_the_lab(prefix_len: int) -> None:
    with pytest.raises(LabError, match="prefix-len"):
        check_prefix_len(prefix_len)


def test_hostnames() -> None:
    assert check_hostname("root.server.demo") == "root.server.demo"
    assert check_hostname("client1") == "client1"
    for bad in ("a_b", "-a", "a..b", "x" * 65, "a." + "b" * 64):
        with pytest.raises(LabError):
            check_hostname(bad)


def test_veth_names_fit_and_are_stable_and_distinct() -> None:
    names = ["a", "lab-root-server", "lab-root-server2", "lab-client1", "lab-client2",
             "e2e-client1", "x" * 40, "abcdef-", "abcde-x"]
    veths = [veth_name(n) for n in names]
    assert all(len(v) <= IFNAMSIZ for v in veths)
    assert len(set(veths)) == len(veths)
    assert veth_name("lab-client1") == veth_name("lab-client1")
    assert veth_name("lab-client1").startswith("v-lab-cl-")
    assert all("--" not in v and not v.endswith("-") for v in veths)
    assert netns_name("lab-client1") == "hcl-lab-client1"


def test_paths_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HASHICLUSTER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HASHICLUSTER_LAB_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("HASHICLUSTER_LAB_RUNTIME", raising=False)
    p = Paths.from_env()
    assert p.base("bookworm") == tmp_path / "cache" / "lab" / "base-bookworm"
    assert p.private_key == tmp_path / "state" / "ssh" / "id_ed25519"
    assert p.machine("m") == tmp_path / "state" / "machines" / "m"
    assert p.runtime == Path("/run/hashicluster/lab")


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    (tmp_path / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n")
    assert base.host_mirror("bookworm", tmp_path) == "http://mirror.example/debian"
    assert base.host_mirror("trixie", tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert base.host_mirror("bookworm", tmp_path) == "http://one.example/debian"
    (tmp_path / "sources.list").unlink()
    assert base.host_mirror("bookworm", tmp_path) == base.DEFAULT_MIRROR


def test_known_hosts_replaces_entries_of_an_address(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path, state=tmp_path / "state", runtime=tmp_path / "run")
    sshkeys.known_hosts_add(paths, "10.210.1.11", "ssh-ed25519 AAAAone root@a")
    sshkeys.known_hosts_add(paths, "10.210.1.12", "ssh-ed25519 AAAAtwo root@b")
    sshkeys.known_hosts_add(paths, "10.210.1.11", "ssh-ed25519 AAAAthree root@a")
    assert paths.known_hosts.read_text().splitlines() == [
        "10.210.1.12 ssh-ed25519 AAAAtwo", "10.210.1.11 ssh-ed25519 AAAAthree"]
    sshkeys.known_hosts_remove(paths, "10.210.1.11")
    assert paths.known_hosts.read_text() == "10.210.1.12 ssh-ed25519 AAAAtwo\n"


def test_mountinfo_escapes_are_decoded() -> None:
    assert mounts._unescape(r"/a\040b\134c") == "/a b\\c"


def test_forward_targets() -> None:
    assert forward.parse_target("10.210.1.10:8500") == ("10.210.1.10", 8500)
    for bad in ("10.210.1.10", "10.210.1.10:0", "10.210.1.10:x", "127.0.0.1:22", "host:22"):
        with pytest.raises(LabError):
            forward.parse_target(bad)


def test_cli_parses_exec_and_up() -> None:
    args = parser().parse_args(["exec", "--", "pulumi", "up", "--stack", "lab"])
    assert args.command[-4:] == ["pulumi", "up", "--stack", "lab"]
    args = parser().parse_args(["up", "m", "--address", "10.210.1.11", "--sysctl",
                                "net.ipv4.ip_forward=1"])
    assert (args.name, args.address, args.prefix_len, args.sysctl) == (
        "m", "10.210.1.11", 16, [("net.ipv4.ip_forward", "1")])
    with pytest.raises(SystemExit):
        parser().parse_args(["up", "m", "--address", "10.210.1.11", "--sysctl", "kernel.x=1"])
