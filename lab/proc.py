"""Running commands and finding processes through /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError


def run(args: Sequence[str], *, check: bool = True, input_text: str | None = None,
        timeout: float | None = None, fix: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with captured output; on failure raise LabError quoting its stderr."""
    try:
        proc = subprocess.run(list(args), input=input_text, capture_output=True, text=True,
                              timeout=timeout, check=False, env=env,
                              stdin=None if input_text is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed", "python3 -m lab deps") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(args)}` did not finish within {timeout} s", fix) from None
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        raise LabError(f"`{' '.join(args)}` failed (exit {proc.returncode}): "
                       + " / ".join(detail[-5:]), fix)
    return proc


def run_visible(args: Sequence[str], *, fix: str | None = None,
                env: dict[str, str] | None = None) -> None:
    """Run a long command whose output is progress: both streams go to our stderr."""
    try:
        code = subprocess.call(list(args), stdin=subprocess.DEVNULL, stdout=sys.stderr,
                               stderr=sys.stderr, env=env)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed", "python3 -m lab deps") from None
    if code != 0:
        raise LabError(f"`{' '.join(args)}` failed (exit {code}); its output is above", fix)


@dataclass(frozen=True)
class Process:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    starttime: int
    argv: tuple[str, ...]

    @property
    def exe_name(self) -> str:
        """The base name of argv[0] ('' for kernel threads)."""
        return os.path.basename(self.argv[0]) if self.argv else ""


def read_process(pid: int) -> Process | None:
    """The process PID, or None if it is gone (or a zombie without a command line)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after the command name (which may hold spaces and parentheses).
    fields = stat[stat.rindex(")") + 2:].split()
    state, ppid, starttime = fields[0], int(fields[1]), int(fields[19])
    if state in ("Z", "X"):
        return None
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0")[:-1]) if raw else ()
    return Process(pid=pid, ppid=ppid, starttime=starttime, argv=argv)


def processes() -> Iterator[Process]:
    """Every live process."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = read_process(int(entry.name))
            if proc is not None:
                yield proc


def same_process(pid: int, starttime: int) -> bool:
    """True if PID is alive and is the process that started at STARTTIME (no pid reuse)."""
    proc = read_process(pid)
    return proc is not None and proc.starttime == starttime


def net_namespace_inode(pid: int | str) -> int | None:
    """The inode of the network namespace of a process ('self' allowed)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def signal_all(pids: Iterable[int], sig: int) -> None:
    """Send SIG to each pid, ignoring ones already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until the processes exit; return the ones still alive after TIMEOUT seconds."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [p for p in remaining if read_process(p) is not None]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining


def terminate(pids: Iterable[int], timeout: float) -> None:
    """SIGTERM, wait up to TIMEOUT, then SIGKILL whatever is left and wait for it to go."""
    pids = list(pids)
    signal_all(pids, signal.SIGTERM)
    left = wait_gone(pids, timeout)
    if left:
        signal_all(left, signal.SIGKILL)
        wait_gone(left, 5)
