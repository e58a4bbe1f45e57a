"""The pre-flight look at one machine, run as root by `python3 -I -S -` before the program changes
anything (cluster/preflight.py decides what is wrong; this only reports). Read-only.

Prints one JSON object: pid1 (the command of PID 1), os (os-release's ID and ID_LIKE), arch
(the machine as its sessions see it, `uname -m`), time (seconds since the epoch), free (free
MiB of the filesystem holding each directory the cluster writes to), installed (the program's
state directory exists: the cluster runs here already) and listeners: every TCP socket
listening and UDP socket bound, with its address, port and the command of its process.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

STATE = "/var/lib/hashicluster"
WRITTEN = ("/usr/local/bin", "/opt", "/var/lib", "/etc")
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def _ipv4(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    return ".".join(str(b) for b in reversed(raw))


def _ipv6(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    words = [raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)]
    full = "".join(words)
    if full == "0" * 32:
        return "::"
    if full.startswith("0" * 20 + "ffff"):
        return _ipv4(words[3])  # an IPv4-mapped address: the IPv4 one
    return ":".join(full[i:i + 4] for i in range(0, 32, 4))


def _owners() -> dict[str, str]:
    """Socket inode -> the command of a process holding it."""
    owners: dict[str, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners.setdefault(target[8:-1], comm)
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return owners


def listeners() -> list[dict[str, object]]:
    owners = _owners()
    found = []
    for name, proto, ipv6 in (("tcp", "tcp", False), ("tcp6", "tcp", True), ("udp", "udp", False),
                              ("udp6", "udp", True)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if proto == "tcp" and state != LISTEN:
                continue
            address, port = local.split(":")
            if proto == "udp" and int(port, 16) == 0:
                continue
            found.append({"proto": proto, "address": _ipv6(address) if ipv6 else _ipv4(address),
                          "port": int(port, 16), "process": owners.get(inode, "")})
    return found


def os_release() -> dict[str, str]:
    values = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
    except OSError:
        pass
    return {"id": values.get("ID", ""), "id_like": values.get("ID_LIKE", ""),
            "pretty": values.get("PRETTY_NAME", "")}


def free_mib(path: str) -> int:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize // (1024 * 1024)


def main() -> None:
    print(json.dumps({
        "pid1": Path("/proc/1/comm").read_text().strip(),
        "os": os_release(),
        "arch": platform.machine(),
        "time": time.time(),
        "free": {path: free_mib(path) for path in WRITTEN},
        "installed": os.path.isdir(STATE),
        "listeners": listeners(),
    }))


main()
