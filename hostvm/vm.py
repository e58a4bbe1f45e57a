"""Run the VM once, without network, until it powers itself off (or a timeout passes).

The first serial port is the console (kernel, systemd); the second carries the job's output
(hostvm-job.service writes to /dev/ttyS1). Both go to files, read while it runs and after.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vagrantbox.errors import BoxError
from vagrantbox.host import BOOT_TOOLS, require_tools

MEMORY_MIB = 6144
CPUS = 2
EXIT_LINE = re.compile(r"^hostvm: job exit (\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class RunResult:
    """What one VM run left: its exit code as the job reported it, its logs, its duration."""

    job_exit: int | None
    console: str
    job_log: str
    seconds: float
    timed_out: bool


def qemu_command(root_disk: Path, share_disk: Path, console: Path, job_log: Path) -> list[str]:
    """TCG with two threads, no network, both disks copy-on-write (snapshot=on).

    `-cpu max`: every instruction set extension TCG emulates (AES-NI, SSE4, AVX2 ..). The
    default qemu64 model has none, so ssh, sha256 and Python fall back to slow generic code.
    """
    return [
        "qemu-system-x86_64",
        "-accel", "tcg,thread=multi,tb-size=256",
        "-cpu", "max",
        "-smp", str(CPUS),
        "-m", str(MEMORY_MIB),
        "-display", "none",
        "-no-reboot",
        "-nic", "none",
        "-serial", f"file:{console}",
        "-serial", f"file:{job_log}",
        "-object", "rng-random,filename=/dev/urandom,id=rng0",
        "-device", "virtio-rng-pci,rng=rng0",
        "-drive", f"file={root_disk},if=virtio,format=qcow2,snapshot=on",
        "-drive", f"file={share_disk},if=virtio,format=raw,snapshot=on",
    ]


def job_exit(job_log: str) -> int | None:
    """The exit code the VM's job reported, or None if it did not get that far."""
    match = EXIT_LINE.search(job_log)
    return int(match.group(1)) if match else None


def read(path: Path) -> str:
    """A log file's text ('' before QEMU made it)."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def run(root_disk: Path, share_disk: Path, work: Path, timeout: float) -> RunResult:
    """Boot, wait until QEMU exits (the job powers the VM off) or TIMEOUT; always stop QEMU."""
    require_tools(BOOT_TOOLS)
    console, job_log = work / "console.log", work / "job.log"
    started = time.monotonic()
    qemu = subprocess.Popen(qemu_command(root_disk, share_disk, console, job_log),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    timed_out = False
    try:
        out, _ = qemu.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        qemu.kill()
        out, _ = qemu.communicate()
    seconds = time.monotonic() - started
    if qemu.returncode not in (0, -9) and not timed_out:
        raise BoxError(f"qemu-system-x86_64 failed ({qemu.returncode}): "
                       f"{out.decode(errors='replace')[-2000:]}")
    log = read(job_log)
    return RunResult(job_exit=job_exit(log), console=read(console), job_log=log,
                     seconds=seconds, timed_out=timed_out)
