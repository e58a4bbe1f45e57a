"""Peak memory while a command runs: its whole process tree (the controller: the Pulumi CLI,
the program's language host, the providers and every SSH session they start) and the host's
used memory (what the lab machines use counts there).

A thread looks every INTERVAL seconds at /proc: the tree is the command's process and its
descendants (read from each task's `children` list), its memory the sum of their resident
sets (VmRSS), the host's `MemTotal - MemAvailable` (/proc/meminfo). A process that lives
shorter than INTERVAL can be missed; the figures are peaks of what was seen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

INTERVAL = 0.2  # seconds between two looks
PROC = Path("/proc")


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The direct children of PID (of all its threads)."""
    found: list[int] = []
    for task in (proc / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def tree(pid: int, proc: Path = PROC) -> list[int]:
    """PID and all its descendants alive now."""
    seen, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo += children(current, proc)
    return seen


def rss_kib(pid: int, proc: Path = PROC) -> tuple[str, int]:
    """PID's command name and resident set in KiB ((name, 0) once it is gone or has none)."""
    name, rss = "", 0
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key == "VmRSS":
                rss = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return name, rss


def host_used_kib(proc: Path = PROC) -> int:
    """The host's memory in use: MemTotal - MemAvailable."""
    values: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            values[key] = int(value.split()[0])
    return values["MemTotal"] - values["MemAvailable"]


@dataclass
class Peaks:
    """The largest figures seen, in MiB: the tree's sum, each command name's largest sum, the
    host's used memory."""

    tree_mib: float = 0.0
    host_mib: float = 0.0
    by_name_mib: dict[str, float] = field(default_factory=dict)
    looks: int = 0

    def see(self, processes: list[tuple[str, int]], host_kib: int) -> None:
        self.looks += 1
        self.tree_mib = max(self.tree_mib, sum(rss for _, rss in processes) / 1024)
        self.host_mib = max(self.host_mib, host_kib / 1024)
        sums: dict[str, int] = {}
        for name, rss in processes:
            sums[name] = sums.get(name, 0) + rss
        for name, kib in sums.items():
            self.by_name_mib[name] = max(self.by_name_mib.get(name, 0.0), kib / 1024)

    def as_dict(self) -> dict[str, object]:
        top = sorted(self.by_name_mib.items(), key=lambda item: -item[1])[:6]
        return {"controller_peak_mib": round(self.tree_mib, 1), "host_peak_mib": round(self.host_mib, 1),
                "by_process_mib": {name: round(mib, 1) for name, mib in top}, "looks": self.looks}


class Watch:
    """`with Watch(pid) as watch: ...`, then watch.peaks: the tree of PID looked at until the
    block ends."""

    def __init__(self, pid: int, interval: float = INTERVAL, proc: Path = PROC) -> None:
        self.pid, self.interval, self.proc = pid, interval, proc
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watch:
        self.look()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def look(self) -> None:
        processes = [rss_kib(pid, self.proc) for pid in tree(self.pid, self.proc)]
        self.peaks.see(processes, host_used_kib(self.proc))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.look()
