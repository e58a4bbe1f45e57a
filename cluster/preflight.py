"""Pre-flight checks of existing machines, before the program changes anything on them.

Every listed host is looked at over SSH at once (templates/probe/preflight.py, run as root
through sudo, read-only): it must be reachable with its login, show the pinned host key, run
systemd as PID 1 on a Debian-like system of a supported architecture, let the login use sudo
without a password, have the ports the cluster needs free, a clock close to this one and room
on its disks. Every problem of every host is reported at once, each naming the host and the
fix; `program.build` turns them into the error that stops the preview.

`judge` and `ssh_failure` are pure (unit-tested); `check_all` does the looking.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster import sshcmd
from cluster.config import ARCHITECTURES, BACKEND_PORT, ClusterSpec, SshHost, SshLogin
from cluster.topology import REGISTRY_PORT, Node, Role

PROBE = Path(__file__).resolve().parent.parent / "templates" / "probe" / "preflight.py"
PROBE_TIMEOUT = 60  # seconds, the whole look at one host
CLOCK_SKEW = 5.0  # seconds a machine's clock may be off (TLS certificates, Raft, ACL tokens)
MIN_FREE_MIB = 1024  # binaries, agents' data, images
# What `uname -m` says -> the architecture the binaries are pinned for.
MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
# The processes of the cluster's own services: a port one of them holds on a machine the
# program installed is not in the way.
OURS = frozenset({"consul", "nomad", "nginx", "dnsmasq", "docker-registry", "cadvisor", "consul-template"})
WILDCARDS = frozenset({"0.0.0.0", "::"})


class PreflightError(RuntimeError):
    """Some hosts are not fit for the cluster; the message lists each problem and its fix."""


@dataclass(frozen=True)
class Problem:
    node: str
    login: str  # user@address:port
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.node} ({self.login}): {self.problem}. Fix: {self.fix}"


@dataclass(frozen=True)
class Facts:
    """What the program keeps from a fit host."""

    arch: str  # amd64, arm64
    host_key: str  # the key it showed ("TYPE BASE64")


def describe(login: SshLogin) -> str:
    return f"{login.user}@{login.address}:{login.port}"


def ports(spec: ClusterSpec, node: Node) -> dict[int, str]:
    """The TCP and UDP ports the cluster's services take on NODE -> which service."""
    needed = {8301: "Consul (gossip)", 8500: "Consul (HTTP API)", 8600: "Consul (DNS)", 53: "dnsmasq"}
    if spec.security.tls:
        needed[8501] = "Consul (HTTPS API)"
    if node.role is Role.SERVER:
        needed |= {8300: "Consul (server RPC)", 8302: "Consul (WAN gossip)", 4646: "Nomad (HTTP API)",
                   4647: "Nomad (RPC)", 4648: "Nomad (gossip)"}
    if node.role is Role.CLIENT:
        needed |= {4646: "Nomad (HTTP API)", 8080: "cAdvisor"}
        if spec.load_balancing == "two-tier":
            needed[BACKEND_PORT] = "nginx (the backend balancer)"
    if node.role is Role.LB:
        needed |= {80: "nginx (the front balancer)", REGISTRY_PORT: "the image registry"}
    return needed


def _in_the_way(listener: Mapping[str, Any], node: Node) -> bool:
    return str(listener.get("address")) in WILDCARDS | {node.address, "127.0.0.1"}


def judge(spec: ClusterSpec, node: Node, login: SshLogin, report: Mapping[str, Any],
          now: float) -> list[Problem]:
    """The problems the probe's REPORT shows on NODE (NOW: this host's time when it answered)."""
    found: list[Problem] = []
    where = describe(login)

    def problem(what: str, fix: str) -> None:
        found.append(Problem(node.name, where, what, fix))

    if report.get("pid1") != "systemd":
        problem(f"PID 1 is {report.get('pid1')!r}, not systemd: the cluster's services are systemd units",
                "use a machine that boots with systemd (Debian 12 or 13, Ubuntu 22.04 or later)")
    os_info = report.get("os") or {}
    family = f"{os_info.get('id', '')} {os_info.get('id_like', '')}".split()
    if "debian" not in family:
        problem(f"{os_info.get('pretty') or 'its OS'} is not Debian-like: the steps install packages "
                "with apt",
                "use Debian 12 or 13, or Ubuntu 22.04 or later")
    arch = MACHINES.get(str(report.get("arch")), str(report.get("arch")))
    if arch not in ARCHITECTURES:
        problem(f"its architecture is {report.get('arch')} (`uname -m`): the binaries are pinned for "
                f"{' and '.join(ARCHITECTURES)} only", "use an x86_64 (amd64) or aarch64 (arm64) machine")
    skew = float(report.get("time", now)) - now
    if abs(skew) > CLOCK_SKEW:
        problem(f"its clock is {skew:+.0f} s off this host's (more than {CLOCK_SKEW:.0f} s breaks TLS "
                "certificates and tokens)",
                "keep time with NTP: apt-get install systemd-timesyncd (or chrony)")
    for path, free in sorted((report.get("free") or {}).items()):
        if int(free) < MIN_FREE_MIB:
            problem(f"{path} has {free} MiB free; the cluster needs {MIN_FREE_MIB} MiB",
                    f"free space on the filesystem of {path}")
    needed = ports(spec, node)
    installed = bool(report.get("installed"))
    for listener in report.get("listeners") or []:
        port, process = int(listener["port"]), str(listener.get("process") or "?")
        if port not in needed or not _in_the_way(listener, node):
            continue
        if installed and process in OURS:
            continue  # the cluster's own service, from an earlier `pulumi up`
        problem(f"port {port} ({listener['proto']}, for {needed[port]}) is taken by {process} on "
                f"{listener['address']}", f"stop {process} or move it off port {port} on this machine")
    return list(dict.fromkeys(found))  # once each: a port may have several sockets alike


def ssh_failure(node: str, login: SshLogin, via: SshLogin | None, returncode: int, stderr: str) -> Problem:
    """What a failed look means: the host key, the login, the network, or sudo."""
    where = describe(login)
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"exit {returncode}"
    if returncode != 255 and "sudo" in text:
        return Problem(node, where, f"{login.user} cannot run sudo without a password ({last})",
                       f"let {login.user} use sudo without a password (a line `{login.user} ALL=(ALL) "
                       f"NOPASSWD:ALL` in /etc/sudoers.d/{login.user}), or log in as root")
    if "Host key verification failed" in text or "IDENTIFICATION HAS CHANGED" in text:
        return Problem(node, where, "its SSH host key is not the pinned one",
                       "check that this is the machine you mean (a reinstalled machine has a new key); "
                       f"then pin the key `ssh-keyscan -t ed25519 -p {login.port} {login.address}` prints "
                       "as its hostKey")
    if "Permission denied" in text:
        auth = f"the key {login.private_key_file}" if login.private_key_file else "the SSH agent's keys"
        return Problem(node, where, f"{login.user} may not log in with {auth}",
                       f"add the public key to ~{login.user}/.ssh/authorized_keys on the host"
                       + ("" if login.private_key_file else ", or `ssh-add` the key"))
    through = f" through the bastion {describe(via)}" if via else ""
    if returncode == 255:
        return Problem(node, where, f"cannot be reached over SSH{through} ({last})",
                       "check the address and port, that sshd runs there and that nothing filters it"
                       + (", and that the bastion may reach it" if via else ""))
    return Problem(node, where, f"the pre-flight probe failed (exit {returncode}: {last})",
                   "the probe needs python3 on the host: apt-get install python3")


def target(login: SshLogin, bastion: SshLogin | None = None, seen_key: str = "") -> dict[str, Any]:
    """A login as cluster/sshcmd.py (and the steps' connections) take it. A host trusted on
    first use is checked against SEEN_KEY when one is known."""
    key = Path(login.private_key_file).expanduser().read_text() if login.private_key_file else ""
    pinned = seen_key if login.tofu else login.host_key
    result: dict[str, Any] = {"host": login.address, "port": login.port, "user": login.user,
                              "private_key": key, "host_key": pinned}
    if bastion is not None:
        result["proxy"] = target(bastion)
    return result


def look(spec: ClusterSpec, node: Node, host: SshHost, bastion: SshLogin | None) -> Facts | list[Problem]:
    """Probe one host and judge it."""
    login = host.login
    via = bastion if host.via_bastion else None
    try:
        where = target(login, via)
    except OSError as err:
        return [Problem(node.name, describe(login), f"cannot read its private key ({err.strerror})",
                        "set privateKeyFile to a readable key file, or leave it out to use the SSH agent")]
    command = sshcmd.as_root(login.user, "python3 -I -S -")
    with tempfile.TemporaryDirectory(prefix="hashicluster-preflight-") as tmp:
        try:
            proc = subprocess.run(sshcmd.ssh_argv(where, Path(tmp), command), input=PROBE.read_text(),
                                  capture_output=True, text=True, check=False, timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return [Problem(node.name, describe(login), f"no answer within {PROBE_TIMEOUT} s",
                            "check that the host is up and its SSH answers")]
        now = time.time()
        seen = sshcmd.recorded_host_key(Path(tmp)) or login.host_key
    if proc.returncode != 0:
        return [ssh_failure(node.name, login, via, proc.returncode, proc.stderr)]
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return [Problem(node.name, describe(login),
                        f"the pre-flight probe printed no report ({proc.stdout[:200]!r})",
                        "check that the login shell prints nothing of its own")]
    problems = judge(spec, node, login, report, now)
    return problems or Facts(arch=MACHINES[str(report["arch"])], host_key=seen)


def check_all(spec: ClusterSpec, nodes: Sequence[Node]) -> dict[str, Facts]:
    """Look at every host at once; the facts of each, or PreflightError listing every problem."""
    settings = spec.machines.ssh
    assert settings is not None, "pre-flight checks are for existing machines (provider ssh)"
    with ThreadPoolExecutor(max_workers=min(32, len(nodes))) as pool:
        results = list(pool.map(lambda pair: look(spec, pair[0], pair[1], settings.bastion),
                                zip(nodes, settings.hosts, strict=True)))
    problems = [p for r in results if isinstance(r, list) for p in r]
    if problems:
        raise PreflightError(f"{len(problems)} problem(s) on the machines; nothing was changed:\n"
                             + "\n".join(f"  - {p}" for p in problems))
    return {node.name: r for node, r in zip(nodes, results, strict=True) if isinstance(r, Facts)}
