"""SSH: the lab key, the machines' host keys, known_hosts, and reaching a machine."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from pathlib import Path

from lab import proc
from lab.errors import LabError
from lab.names import SWITCH_NETNS
from lab.netns import netns_path
from lab.paths import Paths

READY_STATES = ("running", "degraded")


def ensure_key(paths: Paths) -> Path:
    """The lab's SSH key pair, generated once and then kept (Pulumi stacks depend on it)."""
    key = paths.private_key
    if not key.exists():
        paths.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = key.with_name(key.name + ".new")
        for stale in (tmp, tmp.with_name(tmp.name + ".pub")):
            stale.unlink(missing_ok=True)
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hashicluster-lab",
                  "-f", str(tmp)])
        os.replace(tmp.with_name(tmp.name + ".pub"), key.with_name(key.name + ".pub"))
        os.replace(tmp, key)
    return key


def public_key(paths: Paths) -> str:
    """The lab key's public half, one authorized_keys line."""
    return paths.private_key.with_name(paths.private_key.name + ".pub").read_text().strip()


def make_host_key(root: Path, hostname: str) -> str:
    """Replace the machine's host keys by one fresh ed25519 key; return its public line.

    One key type only, so every client (OpenSSH, Go's x/crypto/ssh) negotiates this key.
    """
    ssh_dir = root / "etc" / "ssh"
    for old in ssh_dir.glob("ssh_host_*"):
        old.unlink()
    key = ssh_dir / "ssh_host_ed25519_key"
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}",
              "-f", str(key)])
    return key.with_name(key.name + ".pub").read_text().strip()


def _rewrite_known_hosts(paths: Paths, address: str, line: str | None) -> None:
    """Drop the entries for ADDRESS, then append LINE (if any); atomically."""
    kh = paths.known_hosts
    kh.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = kh.read_text().splitlines() if kh.exists() else []
    keep = [entry for entry in old if entry.split(" ", 1)[0].split(",")[0] != address]
    if line:
        keep.append(line)
    tmp = kh.with_name(kh.name + ".tmp")
    tmp.write_text("".join(f"{entry}\n" for entry in keep))
    os.replace(tmp, kh)


def known_hosts_add(paths: Paths, address: str, host_key: str) -> None:
    """Record HOST_KEY (a .pub line) as the key of ADDRESS."""
    keytype, blob = host_key.split()[:2]
    _rewrite_known_hosts(paths, address, f"{address} {keytype} {blob}")


def known_hosts_remove(paths: Paths, address: str) -> None:
    """Forget the host key of ADDRESS."""
    _rewrite_known_hosts(paths, address, None)


def ssh_args(paths: Paths, address: str, *, batch: bool = True) -> list[str]:
    """An ssh command line for root@ADDRESS with the lab key and the lab's known_hosts."""
    args = ["ssh", "-i", str(paths.private_key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={paths.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3"]
    if batch:
        args += ["-o", "BatchMode=yes"]
    return [*args, f"root@{address}"]


def in_switch(args: list[str]) -> list[str]:
    """ARGS, run inside the switch namespace (where machine addresses exist)."""
    return ["nsenter", f"--net={netns_path(SWITCH_NETNS)}", "--", *args]


def wait_ready(paths: Paths, address: ipaddress.IPv4Address, timeout: float) -> str:
    """Poll `systemctl is-system-running` over ssh until it says running or degraded."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"the machine at {address} was not ready after {timeout:g} s "
                           f"(last state: {last})")
        cmd = in_switch([*ssh_args(paths, str(address)),
                         "systemctl", "is-system-running", "--wait"])
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=max(left, 1),
                                 stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            continue
        out = res.stdout.strip()
        if out in READY_STATES:
            return out
        if out:
            last = out
        elif res.returncode == 255:
            last = (res.stderr.strip().splitlines() or ["ssh: no answer"])[-1]
        time.sleep(0.2)
