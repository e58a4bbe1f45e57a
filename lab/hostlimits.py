"""Kernel limits of the host that many machines outgrow, raised before a machine starts.

Lab machines share the host's kernel and run as the host's root, so every machine's systemd,
journald, logind and agents take their inotify instances from root's one allowance
(fs.inotify.max_user_instances, 128 by default). An idle machine holds about 7, a cluster
machine more; with a user's `lab` stack up and the tests' clusters beside it the default runs
out, and the next machine's systemd fails with "Failed to allocate manager object: Too many
open files". The lab raises the limit (never lowers it) until the next reboot.
"""

from __future__ import annotations

from pathlib import Path

from lab import log
from lab.errors import LabError

INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# Room for about 30 cluster machines; more machines raise it further.
MINIMUM_INOTIFY_INSTANCES = 1024
INOTIFY_INSTANCES_PER_MACHINE = 32


def wanted_inotify_instances(machines: int) -> int:
    """The allowance for MACHINES machines (the host's own needs included)."""
    return max(MINIMUM_INOTIFY_INSTANCES, 128 + INOTIFY_INSTANCES_PER_MACHINE * machines)


def ensure_inotify_instances(machines: int, knob: Path = INOTIFY_INSTANCES) -> int:
    """Raise fs.inotify.max_user_instances to what MACHINES machines need; return the limit."""
    current = int(knob.read_text())
    wanted = wanted_inotify_instances(machines)
    if current >= wanted:
        return current
    try:
        knob.write_text(f"{wanted}\n")
    except OSError as err:
        raise LabError(f"cannot raise fs.inotify.max_user_instances from {current} to {wanted} "
                       f"({err.strerror}); machines would fail with 'Too many open files'",
                       f"sysctl -w fs.inotify.max_user_instances={wanted}") from None
    log.info(f"raised fs.inotify.max_user_instances from {current} to {wanted} "
             f"(for {machines} machines; until the next reboot)")
    return wanted
