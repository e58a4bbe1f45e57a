"""Mount points: reading /proc/self/mountinfo, the machines' overlays, unmounting trees."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lab import proc
from lab.errors import LabError


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    target: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    """Every mount in this process's mount namespace, in mount order."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        result.append(Mount(target=_unescape(fields[4]), fstype=tail[0],
                            source=_unescape(tail[1]) if len(tail) > 1 else ""))
    return result


def _inside(target: str, root: Path) -> bool:
    """True if TARGET is ROOT or below it."""
    r = str(root).rstrip("/")
    return target == r or target.startswith(r + "/")


def mounts_under(root: Path) -> list[Mount]:
    """Mounts at or below ROOT, deepest (and latest) first: the order to unmount them."""
    found = [m for m in mounts() if _inside(m.target, root)]
    found.reverse()
    return sorted(found, key=lambda m: m.target.count("/"), reverse=True)


def is_mountpoint(path: Path) -> bool:
    """True if something is mounted exactly on PATH."""
    return any(m.target == str(path) for m in mounts())


def fstype_of(path: Path) -> str:
    """The type of the file system PATH lives on (the longest mount prefix)."""
    best = Mount("/", "", "")
    for m in mounts():
        if _inside(str(path), Path(m.target)) and len(m.target) >= len(best.target):
            best = m
    return best.fstype


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay of UPPER over LOWER on TARGET (writes land in UPPER)."""
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    proc.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
             fix="check that the kernel supports overlayfs (`modprobe overlay`)")


def unmount_tree(root: Path) -> None:
    """Unmount everything at or below ROOT; lazily if a mount stays busy."""
    for m in mounts_under(root):
        if proc.run(["umount", m.target], check=False).returncode != 0:
            proc.run(["umount", "--lazy", m.target], check=False)
    left = mounts_under(root)
    if left:
        raise LabError(f"could not unmount {', '.join(m.target for m in left)}",
                       "stop what uses them (`fuser -vm PATH`), then `python3 -m lab clean-all`")
