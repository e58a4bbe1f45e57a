"""`clean-all`: remove every trace of the lab, whatever state earlier runs left behind.

It trusts no record: machines are found in the state directory AND by scanning /proc for
systemd-nspawn processes and restart loops using the lab's directories, in the lab's
cgroups, among systemd's hashicluster-lab-* units (where systemd is PID 1) and among the
hcl-* network namespaces. It takes no lock, so it also works when
an earlier lab command hangs while holding one.
"""

from __future__ import annotations

import contextlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import base, cgroups, deps, forward, hostkind, log, machines, mounts, netns, proc, units
from lab.errors import LabError
from lab.names import NETNS_PREFIX, SWITCH_NETNS
from lab.paths import Paths

CLEAN_STOP_TIMEOUT = 10.0


def _name_under(path: str, machines_dir: Path) -> str | None:
    """The machine name if PATH is <machines_dir>/NAME or below it."""
    prefix = str(machines_dir) + "/"
    if path.startswith(prefix):
        return path[len(prefix):].split("/", 1)[0] or None
    return None


def find_machines(paths: Paths) -> set[str]:
    """Names of every machine with any trace: state dir, process, cgroup or namespace."""
    found = set(machines.names(paths))
    for p in proc.processes():
        for arg in p.argv:
            if arg.startswith("--directory=") and p.exe_name == "systemd-nspawn":
                name = _name_under(arg.removeprefix("--directory="), paths.machines)
                if name:
                    found.add(name)
        if len(p.argv) > 4 and p.argv[3] == machines.SUPERVISOR_TAG:
            name = _name_under(p.argv[4], paths.machines)
            if name:
                found.add(name)
    found.update(path.name for path in cgroups.lab_cgroups())
    if hostkind.uses_systemd():
        found.update(units.lab_machines())
    found.update(ns.removeprefix(NETNS_PREFIX) for ns in netns.lab_namespaces()
                 if ns != SWITCH_NETNS)
    return found


def clean_all(paths: Paths, purge: bool = False) -> None:
    """Stop and remove every machine, forward, namespace, cgroup and mount of the lab."""
    deps.require_root()
    forward.stop_all(paths)
    names = sorted(find_machines(paths))
    if names:
        log.info(f"stopping {len(names)} machine(s): {' '.join(names)}")
        with ThreadPoolExecutor(max_workers=8) as pool:
            for result in pool.map(lambda n: machines.stop(paths, n, CLEAN_STOP_TIMEOUT), names):
                del result
    for path in cgroups.lab_cgroups():
        cgroups.remove(path)
    cgroups.remove_empty_parents()
    mounts.unmount_tree(paths.state)
    netns.host_link_down()
    for ns in netns.lab_namespaces():
        netns.delete_netns(ns)
    _unmount_nspawn_tmpfs(paths)
    base.remove_partial_builds(paths)
    for path in (paths.machines, paths.locks, paths.runtime):
        _rmtree(path)
    paths.known_hosts.unlink(missing_ok=True)
    if purge:
        _rmtree(paths.state)
        if paths.base_dir.is_dir():
            for b in paths.base_dir.glob("base-*"):
                log.info(f"removing the cached base {b}")
                _rmtree(b)
            with contextlib.suppress(OSError):
                paths.base_dir.rmdir()
    log.info("the lab is clean" + (" (base and SSH key removed too)" if purge else
                                   " (kept: the cached base and the SSH key)"))


def _unmount_nspawn_tmpfs(paths: Paths) -> None:
    """Unmount the lab's tmpfs on /run/systemd/nspawn once no systemd-nspawn runs at all."""
    if mounts.is_mountpoint(machines.NSPAWN_TMPFS) and \
            not any(p.exe_name == "systemd-nspawn" for p in proc.processes()):
        proc.run(["umount", str(machines.NSPAWN_TMPFS)], check=False)
    paths.nspawn_tmpfs_marker.unlink(missing_ok=True)


def _rmtree(path: Path) -> None:
    """Delete a directory tree, refusing if anything is still mounted inside it."""
    if not path.exists():
        return
    if mounts.mounts_under(path):
        raise LabError(f"{path} still has mounts; not deleting it",
                       "see `grep hashicluster /proc/mounts`, unmount them, run clean-all again")
    shutil.rmtree(path)


def remove_base(paths: Paths, suite: str) -> None:
    """Delete the current cached base of SUITE (for `base --rebuild`)."""
    _rmtree(base.path(paths, suite))
