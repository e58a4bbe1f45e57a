"""The kind of host the lab runs on, decided here and nowhere else.

Two facts matter:

- systemd is PID 1 (sd_booted(): /run/systemd/system exists). Then every process belongs to
  a systemd unit and systemd owns the cgroup tree, so each machine runs in a transient unit
  of its own with cgroup delegation (lab.units). Otherwise nothing gives each machine a
  cgroup, and the lab makes its own in every hierarchy (lab.cgroups).
- the cgroup layout: `unified` (cgroup v2 only, /sys/fs/cgroup is cgroup2; systemd 256+
  supports nothing else), `hybrid` (v1 controllers plus a v2 tree at
  /sys/fs/cgroup/unified) or `legacy` (v1 only). It is reported; the machine manager follows
  from the first fact alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lab import mounts

SYSTEMD_RUNTIME = Path("/run/systemd/system")
SYSTEM_BUS = Path("/run/dbus/system_bus_socket")
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED, HYBRID, LEGACY, NONE = "unified", "hybrid", "legacy", "none"
SYSTEMD, OWN_CGROUPS = "systemd", "own-cgroups"


@dataclass(frozen=True)
class HostKind:
    """What the lab found about this host, and how it runs machines here."""

    systemd_pid1: bool
    cgroup_layout: str
    system_bus: bool = False

    @property
    def manager(self) -> str:
        """`systemd` (a transient unit per machine) or `own-cgroups` (the lab's own cgroups)."""
        return SYSTEMD if self.systemd_pid1 else OWN_CGROUPS

    @property
    def registers_with_machined(self) -> bool:
        """True if nspawn registers each machine with systemd-machined (over the system bus)."""
        return self.manager == SYSTEMD and self.system_bus

    @property
    def cgroup_text(self) -> str:
        """The cgroup layout in words."""
        return {UNIFIED: "cgroup v2 only (unified)", HYBRID: "cgroup v1 + v2 (hybrid)",
                LEGACY: "cgroup v1 only (legacy)", NONE: "no cgroup file system mounted"
                }[self.cgroup_layout]

    def describe(self) -> str:
        """One paragraph for `lab host`: what was found and what the lab does about it."""
        init = "systemd is PID 1" if self.systemd_pid1 else "systemd is not PID 1"
        if self.manager == SYSTEMD:
            how = ("each machine runs in a transient systemd service of its own "
                   "(hashicluster-lab-NAME.service, Delegate=yes) in machine.slice")
            how += (", registered with systemd-machined (`machinectl list`)"
                    if self.registers_with_machined else
                    ", not registered with systemd-machined (no D-Bus system bus)")
        else:
            how = ("each machine runs in cgroups the lab makes itself (hashicluster-lab/NAME "
                   "in every mounted hierarchy), not registered with systemd-machined")
        return f"{init}, {self.cgroup_text}: {how}"

    def as_dict(self) -> dict[str, object]:
        """The facts and the decision, for `lab host --json`."""
        return {"systemd_pid1": self.systemd_pid1, "cgroup_layout": self.cgroup_layout,
                "system_bus": self.system_bus, "manager": self.manager,
                "registers_with_machined": self.registers_with_machined}


def cgroup_layout(mount_list: list[mounts.Mount]) -> str:
    """unified, hybrid, legacy or none, from the mounts at and below /sys/fs/cgroup."""
    by_target = {m.target: m.fstype for m in mount_list}
    if by_target.get(CGROUP_ROOT) == "cgroup2":
        return UNIFIED
    below = [m for m in mount_list if m.target.startswith(CGROUP_ROOT + "/")]
    v1 = any(m.fstype == "cgroup" for m in below)
    v2 = any(m.fstype == "cgroup2" for m in below)
    if v1:
        return HYBRID if v2 else LEGACY
    return UNIFIED if v2 else NONE


def detect(systemd_runtime: Path = SYSTEMD_RUNTIME, system_bus: Path = SYSTEM_BUS,
           mount_list: list[mounts.Mount] | None = None) -> HostKind:
    """Look at this host (or at the given paths and mounts, in tests)."""
    return HostKind(systemd_pid1=systemd_runtime.is_dir(),
                    cgroup_layout=cgroup_layout(mounts.mounts() if mount_list is None
                                                else mount_list),
                    system_bus=system_bus.exists())


@functools.cache
def current() -> HostKind:
    """This host's kind, looked at once per process."""
    return detect()


def uses_systemd() -> bool:
    """True if machines run as systemd units here."""
    return current().manager == SYSTEMD
