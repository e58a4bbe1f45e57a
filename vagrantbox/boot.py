"""Boot a box's disk under QEMU software emulation (no network) and wait for a login prompt."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vagrantbox.errors import BoxError
from vagrantbox.host import BOOT_TOOLS, require_tools

READY = re.compile(rb"login: |Reached target .*Multi-User|Welcome to Debian")
LOGIN = re.compile(rb"login: ")


@dataclass(frozen=True)
class BootResult:
    """What a boot showed: whether a login prompt appeared, after how long, and the console."""

    login_prompt: bool
    seconds: float
    console: str


def qemu_command(disk: Path, memory_mb: int = 512) -> list[str]:
    """TCG, no network, serial console on stdio; snapshot=on leaves DISK untouched."""
    return [
        "qemu-system-x86_64",
        "-accel", "tcg,tb-size=64",
        "-m", str(memory_mb),
        "-nographic",
        "-serial", "mon:stdio",
        "-drive", f"file={disk},if=virtio,snapshot=on",
        "-nic", "none",
    ]


def extract_disk(box_file: Path, dest: Path) -> Path:
    """Unpack box.img from BOX_FILE into DEST (reused when already newer than the box)."""
    disk = dest / "box.img"
    if disk.exists() and disk.stat().st_mtime >= box_file.stat().st_mtime:
        return disk
    with tarfile.open(box_file) as tar:
        member = tar.getmember("box.img")
        tar.extract(member, dest, filter="data")
    return disk


def boot(disk: Path, timeout: float = 240.0) -> BootResult:
    """Boot DISK until a login prompt (or TIMEOUT); always kill QEMU; return what was seen."""
    require_tools(BOOT_TOOLS)
    started = time.monotonic()
    proc = subprocess.Popen(
        qemu_command(disk), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    buffer = bytearray()
    seen = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 4096):
            buffer.extend(chunk)
            if LOGIN.search(buffer[-8192:] if len(buffer) > 8192 else buffer):
                seen.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        seen.wait(timeout)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
        thread.join(5)
    console = buffer.decode(errors="replace")
    if proc.returncode not in (0, -9) and not seen.is_set():
        raise BoxError(f"qemu-system-x86_64 failed ({proc.returncode}):\n{console[-2000:]}")
    return BootResult(login_prompt=seen.is_set(), seconds=elapsed, console=console)
