"""The facts a benchmark result needs beside its numbers: the machine and the code measured.

The parsers are pure (`mem_total_kib`, `kvm_usable`); `collect` reads this host.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path


def mem_total_kib(meminfo: str) -> int | None:
    """MemTotal of /proc/meminfo, in KiB."""
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key == "MemTotal":
            fields = rest.split()
            return int(fields[0]) if fields and fields[0].isdigit() else None
    return None


def kvm_usable(cpuinfo: str, dev_kvm_exists: bool) -> bool:
    """Hardware virtualisation: the CPU flags vmx or svm, and /dev/kvm."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, rest = line.partition(":")
        if key.strip() == "flags":
            flags.update(rest.split())
    return dev_kvm_exists and bool(flags & {"vmx", "svm"})


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def git_commit(repo: Path) -> str:
    """HEAD's commit, `+ changes` when the working tree differs from it (the tree is measured)."""
    commit = _git(repo, "rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=normal"))
    return f"{commit} + uncommitted changes" if dirty else commit


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def collect(repo: Path, pulumi_version: str) -> dict[str, str]:
    """This host's facts, in the order the report shows them."""
    mem = mem_total_kib(_read("/proc/meminfo"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(repo),
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "memory (MemTotal)": f"{mem / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "kernel (uname -r)": platform.release(),
        "KVM": "yes" if kvm_usable(_read("/proc/cpuinfo"), Path("/dev/kvm").exists()) else "no",
        "python": platform.python_version(),
        "pulumi": pulumi_version or "unknown",
        "load average at start": load_average(),
    }
