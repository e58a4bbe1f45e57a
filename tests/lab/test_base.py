"""The real base: nginx installed but off (in the cached base and in one built from nothing),
and machines keep the base they came from."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import base, machines
from lab.names import netns_name, veth_name
from lab.paths import Paths

from ..waiting import wait_until
from .conftest import Lab, needs_root_and_nspawn

pytestmark = [pytest.mark.lab, needs_root_and_nspawn]


@pytest.fixture(scope="module")
def current_base(lab: Lab) -> Path:
    """The current base, as `lab base` prints it (it exists after the lab fixture)."""
    return Path(lab.run("base").stdout.strip())


@pytest.fixture(scope="module")
def cold_lab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab with an empty cache, state and runtime of its own: what a fresh host has. Its base
    is built from nothing (debootstrap from the host's Debian mirror), not taken from the
    cache that every other lab test shares."""
    root = tmp_path_factory.mktemp("cold")
    env = dict(lab.env, HASHICLUSTER_CACHE=str(root / "cache"),
               HASHICLUSTER_LAB_STATE=str(root / "state"), HASHICLUSTER_LAB_RUNTIME=str(root / "run"))
    cold = Lab(state=root / "state", runtime=root / "run", env=env)
    yield cold
    for d in sorted((cold.state / "machines").glob("*")):
        cold.run("down", d.name, check=False)
    shutil.rmtree(root / "cache", ignore_errors=True)


def lab_paths(lab: Lab) -> Paths:
    return Paths(cache=Path(lab.env.get("HASHICLUSTER_CACHE") or "/var/cache/hashicluster"),
                 state=lab.state, runtime=lab.runtime)


def test_the_base_is_keyed_by_suite_and_recipe(lab: Lab, current_base: Path) -> None:
    assert current_base == base.path(lab_paths(lab), "bookworm")
    assert current_base.name == f"base-bookworm-{base.recipe_hash()}"


def test_nginx_is_in_the_base_but_not_enabled(current_base: Path) -> None:
    assert (current_base / "usr" / "sbin" / "nginx").exists()
    assert (current_base / "lib" / "systemd" / "system" / "nginx.service").exists()
    assert nginx_boot_links(current_base) == []
    assert not base.processes_in(current_base), "nothing runs from the base itself"


def test_nginx_is_off_on_a_machine_and_can_be_turned_on(lab: Lab, current_base: Path) -> None:
    lab.up_parallel({"lt-nginx": "10.210.250.16"})
    try:
        assert lab.ssh("lt-nginx", "systemctl is-enabled nginx; systemctl is-active nginx; "
                       "systemctl is-system-running || true").splitlines() == [
            "disabled", "inactive", "running"]
        out = lab.ssh("lt-nginx", "systemctl enable --now nginx 2>/dev/null && "
                      "systemctl is-active nginx && "
                      "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/")
        assert out.splitlines() == ["active", "200"]
    finally:
        lab.run("down", "lt-nginx")


def nginx_boot_links(root: Path) -> list[str]:
    """Every link that would start nginx at boot: systemd's wants links in the base (found by
    name: seen from the host, such a link dangles where the host has no nginx)."""
    return sorted(str(wants.relative_to(root) / "nginx.service")
                  for wants in (root / "etc" / "systemd").glob("**/*.wants")
                  if (wants / "nginx.service").is_symlink())


def test_a_base_built_from_nothing_has_nginx_off(cold_lab: Lab) -> None:
    """A fresh host's first base, made by debootstrap now: nginx installed, nothing enables it,
    and a machine booted from it has nginx off."""
    built = Path(cold_lab.run("base", timeout=900).stdout.strip())
    assert built == base.path(lab_paths(cold_lab), "bookworm")
    assert str(built).startswith(cold_lab.env["HASHICLUSTER_CACHE"]), "built anew, not the shared one"
    assert (built / "usr" / "sbin" / "nginx").exists()
    assert nginx_boot_links(built) == []
    offline = subprocess.run(["systemctl", f"--root={built}", "is-enabled", "nginx.service"],
                             capture_output=True, text=True, check=False)
    assert offline.stdout.strip() == "disabled", offline.stdout + offline.stderr
    cold_lab.up_parallel({"lt-cold": "10.210.250.19"})
    try:
        assert cold_lab.ssh("lt-cold", "systemctl is-enabled nginx; systemctl is-active nginx; "
                            "systemctl is-system-running || true").splitlines() == [
            "disabled", "inactive", "running"]
    finally:
        cold_lab.run("down", "lt-cold")


def test_stop_processes_in_stops_what_runs_in_a_chroot(current_base: Path) -> None:
    sleeper = subprocess.Popen(["chroot", str(current_base), "/bin/sleep", "infinity"])
    try:
        wait_until("the chrooted sleep among the processes in the base",
                   lambda: base.processes_in(current_base), poll=0.05)
        assert [p.pid for p in base.processes_in(current_base)] == [sleeper.pid]
        base.stop_processes_in(current_base)
        assert sleeper.wait(timeout=120) != 0
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture()
def older_base(current_base: Path) -> Iterator[Path]:
    """A stand-in for a base built from an older recipe: a hard-linked copy of the current
    one, next to the test's state (same file system as the cache here, else a full copy)."""
    copy = Path(f"/var/tmp/hashicluster-test-base-bookworm-{os.getpid()}")
    shutil.rmtree(copy, ignore_errors=True)
    link = subprocess.run(["cp", "-a", "--link", str(current_base), str(copy)],
                          capture_output=True, check=False)
    if link.returncode != 0:
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-a", str(current_base), str(copy)], check=True)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def _record(lab: Lab, name: str, address: str, base_path: Path) -> None:
    """The record an earlier `up` would have left for a machine made from BASE_PATH."""
    machines.save(lab_paths(lab), machines.Record(
        name=name, address=address, prefix_len=16, hostname=name, suite="bookworm",
        base=str(base_path), netns=netns_name(name), veth=veth_name(name), created=time.time()))


def test_a_machine_keeps_the_base_it_was_made_from(lab: Lab, current_base: Path,
                                                   older_base: Path) -> None:
    _record(lab, "lt-older", "10.210.250.17", older_base)
    try:
        lab.up_parallel({"lt-older": "10.210.250.17"})
        root = lab.state / "machines" / "lt-older" / "root"
        overlay = [line for line in Path("/proc/mounts").read_text().splitlines()
                   if line.split()[1] == str(root)]
        assert len(overlay) == 1 and f"lowerdir={older_base}," in overlay[0]
        assert lab.ssh("lt-older", "systemctl is-system-running || true") == "running"
        assert Path(lab.run("base").stdout.strip()) == current_base
    finally:
        lab.run("down", "lt-older")
    assert lab.leftovers(["lt-older"])["mounts"] == []


def test_a_machine_whose_base_is_gone_is_refused(lab: Lab) -> None:
    gone = Path("/var/tmp/hashicluster-test-base-bookworm-gone")
    _record(lab, "lt-nobase", "10.210.250.18", gone)
    try:
        res = lab.run("up", "lt-nobase", "--address", "10.210.250.18", check=False)
        assert res.returncode == 1
        assert f"machine 'lt-nobase' was made from the base {gone}, which is gone" in res.stderr
        assert "python3 -m lab down lt-nobase" in res.stderr
        assert not machines.is_running(lab_paths(lab), "lt-nobase")
    finally:
        lab.run("down", "lt-nobase")
    assert not (lab.state / "machines" / "lt-nobase").exists()
