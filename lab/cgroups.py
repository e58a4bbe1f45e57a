"""One cgroup per machine in every mounted hierarchy (v1 controllers, name=systemd, v2).

Without systemd as PID 1 nothing gives each systemd-nspawn its own cgroup, and machines
started from one shell would share (and fight over) the caller's. The lab therefore makes
<hierarchy>/hashicluster-lab/<machine> in each hierarchy it finds mounted and starts the
machine there; on a systemd host the same code simply finds fewer hierarchies (often just
the unified one). Removing a machine kills what is left in its cgroups and removes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from lab import mounts
from lab.errors import LabError

LAB_CGROUP = "hashicluster-lab"
_CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")


def hierarchies() -> list[Path]:
    """The mount point of each cgroup hierarchy (v1 and v2) in this mount namespace."""
    seen: dict[str, Path] = {}
    for m in mounts.mounts():
        if m.fstype in ("cgroup", "cgroup2"):
            seen.setdefault(os.path.realpath(m.target), Path(m.target))
    return sorted(seen.values())


def machine_cgroups(name: str) -> list[Path]:
    """The machine's cgroup directory in every hierarchy (existing or not)."""
    return [h / LAB_CGROUP / name for h in hierarchies()]


def lab_cgroups() -> list[Path]:
    """Every machine cgroup that exists, in any hierarchy (for clean-all)."""
    found = []
    for h in hierarchies():
        parent = h / LAB_CGROUP
        if parent.is_dir():
            found.extend(sorted(p for p in parent.iterdir() if p.is_dir()))
    return found


def _make(path: Path) -> None:
    """mkdir a cgroup; in a v1 cpuset hierarchy give it its parent's CPUs and memory nodes."""
    if path.is_dir():
        return
    path.mkdir()
    for fname in _CPUSET_FILES:
        parent_file = path.parent / fname
        if parent_file.exists() and not (path / fname).read_text().strip():
            (path / fname).write_text(parent_file.read_text())


def create(name: str) -> list[Path]:
    """Create the machine's cgroups; return them."""
    made = []
    for h in hierarchies():
        try:
            _make(h / LAB_CGROUP)
            _make(h / LAB_CGROUP / name)
        except OSError as err:
            raise LabError(f"cannot create the cgroup {h / LAB_CGROUP / name}: {err.strerror}",
                           "run as root on a host whose cgroup file systems are writable") from None
        made.append(h / LAB_CGROUP / name)
    return made


def join(paths: list[Path]) -> None:
    """Move the calling process into each cgroup in PATHS (its children inherit them)."""
    pid = str(os.getpid())
    for path in paths:
        (path / "cgroup.procs").write_text(pid)


def pids_in(path: Path) -> set[int]:
    """Every process in the cgroup PATH and the cgroups below it."""
    found: set[int] = set()
    for dirpath, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                text = Path(dirpath, "cgroup.procs").read_text()
            except OSError:
                continue
            found.update(int(p) for p in text.split())
    return found


def kill(path: Path, timeout: float = 10) -> None:
    """SIGKILL every process in the cgroup tree PATH until it is empty."""
    deadline = time.monotonic() + timeout
    while path.is_dir():
        kill_file = path / "cgroup.kill"  # cgroup v2, Linux 5.14+
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        pids = pids_in(path)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise LabError(f"processes {sorted(pids)} in {path} survive SIGKILL",
                           "check them with `ps -o pid,stat,cmd -p PID` (D state = stuck I/O)")
        time.sleep(0.1)


def remove(path: Path) -> None:
    """Kill what is left in the cgroup tree PATH, then remove its directories bottom-up."""
    if not path.is_dir():
        return
    kill(path)
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: w[0].count("/"),
                                         reverse=True):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise LabError(f"cannot remove the cgroup {dirpath}: {err.strerror}",
                           "python3 -m lab clean-all") from None


def remove_machine(name: str) -> None:
    """Remove the machine's cgroups in every hierarchy, and the lab's parent when empty."""
    for path in machine_cgroups(name):
        remove(path)
    remove_empty_parents()


def remove_empty_parents() -> None:
    """Remove hashicluster-lab in each hierarchy once no machine cgroup is left in it."""
    for h in hierarchies():
        with contextlib.suppress(OSError):
            (h / LAB_CGROUP).rmdir()
