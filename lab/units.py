"""Machines as transient systemd services, on hosts where systemd is PID 1.

Each machine's systemd-nspawn is the main process of its own service,

    hashicluster-lab-NAME.service in machine.slice, Delegate=yes,

started with `systemd-run` the way systemd's own systemd-nspawn@.service runs containers:
nspawn keeps that unit (--keep-unit) and registers it with systemd-machined; the delegated
cgroup is the machine's to manage; a reboot inside (exit code 133) starts it again; stopping
the unit sends SIGTERM to nspawn (the machine powers off), then SIGKILL to whatever is left.
The unit is collected once it stops, failed or not, so nothing of a machine outlives it.
machine.slice is systemd's own slice for containers and VMs (nspawn@.service uses it too),
so the lab adds no slice that would stay behind once its last machine is gone.
"""

from __future__ import annotations

import time
from pathlib import Path

from lab import proc
from lab.errors import LabError

SLICE = "machine.slice"
UNIT_PREFIX = "hashicluster-lab-"
UNIT_SUFFIX = ".service"
REBOOT_EXIT = "133"  # systemd-nspawn's exit code when the machine asked for a reboot
GONE_STATES = ("inactive", "failed", "")


def unit_name(name: str) -> str:
    """The service that runs machine NAME."""
    return f"{UNIT_PREFIX}{name}{UNIT_SUFFIX}"


def machine_of(unit: str) -> str | None:
    """The machine name of a lab unit, or None for any other unit."""
    if unit.startswith(UNIT_PREFIX) and unit.endswith(UNIT_SUFFIX):
        return unit[len(UNIT_PREFIX):-len(UNIT_SUFFIX)] or None
    return None


def run_command(name: str, boot: list[str], console: Path, stop_timeout: float) -> list[str]:
    """The `systemd-run` command that runs BOOT as machine NAME's service (BOOT execs
    systemd-nspawn, which becomes the service's main process)."""
    properties = {
        "Type": "notify",  # nspawn says READY=1 once the machine's init runs
        "Delegate": "yes",
        "KillMode": "mixed",  # SIGTERM to nspawn only; the machine shuts itself down
        "TimeoutStopSec": f"{stop_timeout:g}s",
        "RestartForceExitStatus": REBOOT_EXIT,
        "SuccessExitStatus": REBOOT_EXIT,
        "StandardOutput": f"append:{console}",
        "StandardError": f"append:{console}",
    }
    return ["systemd-run", f"--unit={unit_name(name)}", f"--slice={SLICE}", "--collect",
            "--quiet", f"--description=hashicluster lab machine {name}",
            *(f"--property={key}={value}" for key, value in properties.items()), "--", *boot]


def start(name: str, boot: list[str], console: Path, stop_timeout: float) -> None:
    """Start machine NAME's service; returns once systemd-nspawn runs the machine's init."""
    proc.run(run_command(name, boot, console, stop_timeout), timeout=120,
             fix=f"read {console} and `journalctl -u {unit_name(name)}`")


def properties(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=VALUE lines, in systemd's order) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def state(name: str) -> str:
    """The service's ActiveState ('' when systemd does not know it)."""
    result = proc.run(["systemctl", "show", "--property=ActiveState,LoadState", unit_name(name)],
                      check=False)
    found = properties(result.stdout)
    if result.returncode != 0 or found.get("LoadState", "not-found") == "not-found":
        return ""
    return found.get("ActiveState", "")


def memory_bytes(name: str) -> int | None:
    """The service's memory use as systemd counts it (None if not counted)."""
    result = proc.run(["systemctl", "show", "--property=MemoryCurrent", "--value",
                       unit_name(name)], check=False)
    value = result.stdout.strip()
    return int(value) if value.isdigit() else None


def _wait_gone(name: str, timeout: float) -> bool:
    """Wait until the service has stopped; False if it still runs after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while state(name) not in GONE_STATES:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stop(name: str, timeout: float) -> None:
    """Power machine NAME off: stop its service, SIGKILL what is left after TIMEOUT seconds."""
    unit = unit_name(name)
    if state(name) == "":
        return
    proc.run(["systemctl", "stop", "--no-block", unit], check=False)
    if not _wait_gone(name, timeout):
        proc.run(["systemctl", "kill", "--kill-whom=all", "--signal=SIGKILL", unit], check=False)
        if not _wait_gone(name, 10):
            raise LabError(f"{unit} is still {state(name)} after SIGKILL",
                           f"`systemctl status {unit}` shows what is left")
    proc.run(["systemctl", "reset-failed", unit], check=False)


def lab_units() -> list[str]:
    """Every lab machine service systemd knows, running or not."""
    result = proc.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--full",
                       f"{UNIT_PREFIX}*{UNIT_SUFFIX}"], check=False)
    return sorted(line.split()[0] for line in result.stdout.splitlines()
                  if line.split() and machine_of(line.split()[0]))


def lab_machines() -> list[str]:
    """The machine names of every lab service systemd knows."""
    return [m for m in (machine_of(u) for u in lab_units()) if m]
