"""Pure unit tests of the lab tool: no root, no machines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab import base, deps, forward, mounts, proc, sshkeys
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
    assert p.base("bookworm-0123abcd") == tmp_path / "cache" / "lab" / "base-bookworm-0123abcd"
    assert base.path(p, "bookworm") == \
        tmp_path / "cache" / "lab" / f"base-bookworm-{base.recipe_hash()}"
    assert p.private_key == tmp_path / "state" / "ssh" / "id_ed25519"
    assert p.machine("m") == tmp_path / "state" / "machines" / "m"
    assert p.runtime == Path("/run/hashicluster/lab")


def test_base_key_is_the_suite_and_a_hash_of_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = base.recipe_hash()
    assert len(digest) == 8 and int(digest, 16) >= 0
    assert base.key("bookworm") == f"bookworm-{digest}"
    assert base.recipe_hash(reversed(base.PACKAGES)) == digest, "order does not matter"
    assert base.recipe_hash([*base.PACKAGES, "curl"]) == digest, "neither do repeats"
    assert base.recipe_hash([*base.PACKAGES, "jq"]) != digest
    assert base.recipe_hash([p for p in base.PACKAGES if p != "nginx"]) != digest
    assert base.recipe_hash(disabled=()) != digest
    assert base.recipe_hash(masked=()) != digest
    with pytest.raises(LabError, match="suite"):
        base.key("../etc")
    # A base prepared another way (a new revision of `prepare`) is another base.
    monkeypatch.setattr(base, "RECIPE_REVISION", base.RECIPE_REVISION + 1)
    assert base.recipe_hash() != digest


def fake_debootstrap(args: list[str], **kwargs: object) -> None:
    """Stands in for `debootstrap --include=PACKAGES SUITE TARGET MIRROR`: a root where every
    included package is installed (its dpkg file list), ssh has host keys, nginx's package has
    enabled its unit (as Debian's postinst does, with an absolute link), and the apt timers
    are enabled."""
    include = next(a for a in args if a.startswith("--include=")).removeprefix("--include=")
    root = Path(args[-2])
    for d in ("etc/ssh", "var/lib/dpkg/info", "var/lib/dbus", "var/cache/apt/archives", "root",
              "lib/systemd/system", "etc/systemd/system/multi-user.target.wants",
              "etc/systemd/system/timers.target.wants"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text("ID=debian\n")
    (root / "etc" / "ssh" / "ssh_host_ed25519_key").write_text("the image's own key\n")
    for package in include.split(","):
        (root / "var" / "lib" / "dpkg" / "info" / f"{package}.list").write_text("")
    if "nginx" in include.split(","):
        (root / "usr" / "sbin").mkdir(parents=True)
        (root / "usr" / "sbin" / "nginx").write_text("")
        (root / "lib" / "systemd" / "system" / "nginx.service").write_text("[Unit]\n")
        (root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "nginx.service").symlink_to(
            "/lib/systemd/system/nginx.service")
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (root / "etc" / "systemd" / "system" / "timers.target.wants" / timer).symlink_to(
            f"/lib/systemd/system/{timer}")


def test_a_built_base_has_nginx_installed_but_not_started_at_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`base.build` with debootstrap faked (no root, no mirror): nginx is in the base, nothing
    starts it at boot, the apt timers are masked and the image's host keys are gone."""
    monkeypatch.setattr(deps, "require_root", lambda: None)
    monkeypatch.setattr(deps, "require", lambda *programs: None)
    monkeypatch.setattr(deps, "require_debian_keyring", lambda *args: None)
    monkeypatch.setattr(proc, "run_visible", fake_debootstrap)
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state", runtime=tmp_path / "run")
    built = base.build(paths, "bookworm", "http://mirror.invalid/debian")
    assert built == base.path(paths, "bookworm") and base.is_ready(built)
    assert (built / "var" / "lib" / "dpkg" / "info" / "nginx.list").exists(), "nginx installed"
    assert (built / "usr" / "sbin" / "nginx").exists()
    assert (built / "lib" / "systemd" / "system" / "nginx.service").exists(), "its unit too"
    boot_links = [str(p.relative_to(built)) for p in (built / "etc" / "systemd").rglob("*.service")
                  if p.is_symlink()]
    assert boot_links == [], "nothing starts nginx (or any service the fake enabled) at boot"
    system = built / "etc" / "systemd" / "system"
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert os.readlink(system / timer) == "/dev/null", f"{timer} masked"
    assert list((built / "etc" / "ssh").glob("ssh_host_*")) == [], "each machine makes its own"


def _fake_base(path: Path) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "os-release").write_text("ID=debian\n")
    return path


def test_ensure_returns_a_ready_base_without_building(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths(cache=tmp_path, state=tmp_path / "state", runtime=tmp_path / "run")

    def no_build(*args: object) -> Path:
        raise AssertionError("built although the base was there")

    monkeypatch.setattr(base, "build", no_build)
    current = _fake_base(base.path(paths, "bookworm"))
    assert base.ensure(paths, "bookworm") == current
    assert base.for_machine(paths, "m", "bookworm", None) == current
    # a machine made from an older base keeps it ...
    older = _fake_base(paths.base("bookworm"))
    assert base.for_machine(paths, "m", "bookworm", str(older)) == older
    # ... and is told what to do when it is gone
    gone = tmp_path / "lab" / "base-bookworm-00000000"
    with pytest.raises(LabError, match=r"'m' was made from the base .*, which is gone") as err:
        base.for_machine(paths, "m", "bookworm", str(gone))
    assert "python3 -m lab down m" in (err.value.fix or "")


def test_older_bases_are_the_other_keys_of_the_suite(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path, state=tmp_path / "state", runtime=tmp_path / "run")
    assert base.older_bases(paths, "bookworm") == []
    for name in ("base-bookworm", "base-bookworm-0123abcd", "base-trixie-0123abcd",
                 f"base-{base.key('bookworm')}", ".base-bookworm-0123abcd.building-12"):
        (paths.base_dir / name).mkdir(parents=True)
    (paths.base_dir / "base-bookworm-89abcdef").write_text("not a directory")
    assert [p.name for p in base.older_bases(paths, "bookworm")] == [
        "base-bookworm", "base-bookworm-0123abcd"]


@pytest.mark.parametrize("target", ["/lib/systemd/system/nginx.service",
                                    "/nonexistent/on/any/host/nginx.service"])
def test_disable_unit_removes_only_its_boot_links(tmp_path: Path, target: str) -> None:
    """Whether or not the absolute link's target exists on the host (a fresh host has no
    nginx), the unit's boot links go and the others stay."""
    system = tmp_path / "etc" / "systemd" / "system"
    units = tmp_path / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in ("nginx.service", "ssh.service"):
        (units / unit).write_text("[Unit]\n")
    for wants in ("multi-user.target.wants", "graphical.target.wants"):
        (system / wants).mkdir(parents=True)
        (system / wants / "nginx.service").symlink_to(target)
    (system / "multi-user.target.wants" / "ssh.service").symlink_to(
        "/lib/systemd/system/ssh.service")
    base.disable_unit(tmp_path, "nginx.service")
    assert sorted(str(p.relative_to(system)) for p in system.rglob("*")) == [
        "graphical.target.wants", "multi-user.target.wants",
        "multi-user.target.wants/ssh.service"]
    assert (units / "nginx.service").exists(), "the unit stays installed"
    base.disable_unit(tmp_path, "nginx.service")  # already off: still fine


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


def test_without_debians_keyring_the_package_is_named(tmp_path: Path) -> None:
    """An Ubuntu host: debootstrap is there, Debian's archive keyring is not."""
    missing_keyring = tmp_path / "debian-archive-keyring.gpg"
    assert "debian-archive-keyring" in deps.missing_packages(["debootstrap"], keyring=missing_keyring)
    with pytest.raises(LabError, match="apt-get install debian-archive-keyring"):
        deps.require_debian_keyring(missing_keyring)
    missing_keyring.write_text("keys")
    assert "debian-archive-keyring" not in deps.missing_packages(["debootstrap"], keyring=missing_keyring)
    deps.require_debian_keyring(missing_keyring)
