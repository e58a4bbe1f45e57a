"""OpenSSH command lines for the program's own looks at machines (the pre-flight checks, the
drift probe): the same login as the steps' connections, a known_hosts of their own, and the
bastion as a ProxyCommand.

A target is a mapping like the steps' connection: host, port, user, private_key (the key's
text; "" = the SSH agent), host_key ("TYPE BASE64"; "" = accept the key the host shows, for a
host trusted on first use) and, optionally, proxy (a target without a proxy of its own).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT = 5  # seconds
# curve25519: OpenSSH's default, the post-quantum sntrup761x25519, costs about 0.13 s more per
# connection on a 2-core host (measured: `ssh true` into a lab machine 0.30 s against 0.17 s),
# and a refresh or a pre-flight connects to every machine at once.
KEX = "curve25519-sha256,curve25519-sha256@libssh.org"


def known_hosts_line(host: str, port: int, key: str) -> str:
    return f"{host if port == 22 else f'[{host}]:{port}'} {key}\n"


def _options(target: Mapping[str, Any], workdir: Path, name: str) -> list[str]:
    """ssh's options for TARGET: its key written into WORKDIR, its host key pinned there."""
    host, port = str(target["host"]), int(target.get("port") or 22)
    known = workdir / f"{name}.known_hosts"
    host_key = str(target.get("host_key") or "")
    known.write_text(known_hosts_line(host, port, host_key) if host_key else "")
    options = ["-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
               "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", f"UserKnownHostsFile={known}",
               "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", f"KexAlgorithms={KEX}",
               "-o", f"StrictHostKeyChecking={'yes' if host_key else 'accept-new'}"]
    private_key = str(target.get("private_key") or "")
    if private_key:
        key = workdir / f"{name}.key"
        key.write_text(private_key if private_key.endswith("\n") else private_key + "\n")
        key.chmod(0o600)
        options += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    return options


def ssh_argv(target: Mapping[str, Any], workdir: Path, command: str) -> list[str]:
    """`ssh ... USER@HOST COMMAND` for TARGET, through its proxy if it has one. WORKDIR (private
    to the caller) receives the key files and known_hosts files."""
    options = _options(target, workdir, "target")
    proxy = target.get("proxy")
    if proxy:
        jump = ["ssh", *_options(proxy, workdir, "proxy"), "-W", "%h:%p", f"{proxy['user']}@{proxy['host']}"]
        options += ["-o", "ProxyCommand=" + shlex.join(jump)]
    return ["ssh", *options, f"{target['user']}@{target['host']}", command]


def recorded_host_key(workdir: Path) -> str:
    """The key a host trusted on first use showed to ssh_argv's connection ("" if none)."""
    try:
        lines = (workdir / "target.known_hosts").read_text().split("\n")
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            return f"{fields[1]} {fields[2]}"
    return ""


def as_root(user: str, command: str) -> str:
    """COMMAND as root: as it is for root, through `sudo -n` (never a password prompt) otherwise."""
    return command if user == "root" else f"sudo -n -- {command}"
