"""Existing machines for the `ssh` machine provider's end-to-end test (test_ssh_machines.py).

Five lab machines made OUTSIDE any Pulumi stack, `python3 -m lab up` as a user of the
provider would have them: sshe2e-root-server, sshe2e-frontend-lb and sshe2e-client1..3 on
10.210.5.0/24 at the program's usual offsets (server .10, load balancer .20, clients .31-.33;
cluster.config), the clients made with `--containers`. On each, the user `deploy` logs in
with an ed25519 key made for the run and has passwordless sudo (/etc/sudoers.d/deploy). The
clients' sshd lets `deploy` in only from the load balancer's address (a drop-in
`AllowUsers root deploy@LB`): the cluster reaches them through the load balancer as its
bastion. client2 also has `nosudo`, who logs in (through the load balancer too) with the same
key and has no sudo.

Everything here that talks to a machine does it from the lab network (`python3 -m lab exec`),
where Pulumi runs: the lab is not routed to the host's network namespace. Root's commands go
through `python3 -m lab ssh` (the lab's own key); the users' through plain OpenSSH with a
config file of the run's own (the key, and known_hosts with every machine's pinned key).

10.210.5.0/24 is also `python3 -m review run`'s default network and where the command
provider's test puts its `cpt-*` machine (the first free address): the lab refuses an address
that another machine has, so a review left up there stops this test at `lab up`, naming it.

`snapshot()` records what a cluster may change on a machine, so that a test can tell that a
machine is as it was before a cluster came and went (VOLATILE: what changes on its own).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import re
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from cluster.config import CLIENT_OFFSET, LB_OFFSET, SERVER_OFFSET

from ..waiting import wait_until
from .conftest import ROOT, run

PREFIX = "sshe2e-"
NETWORK = ipaddress.IPv4Network("10.210.5.0/24")
ROOT_SERVER = "root-server"
LB = "frontend-lb"
CLIENTS = ("client1", "client2", "client3")
NODES = (ROOT_SERVER, LB, *CLIENTS)
ADDRESSES = {
    ROOT_SERVER: str(NETWORK[SERVER_OFFSET]),
    LB: str(NETWORK[LB_OFFSET]),
    **{client: str(NETWORK[CLIENT_OFFSET + i]) for i, client in enumerate(CLIENTS, start=1)},
}
DOMAIN = "demo"
USER = "deploy"
NOSUDO = "nosudo"  # on client2 only: logs in, no sudo
NOSUDO_NODE = "client2"
ARCH_NODE, ARCH_PORT = "client3", 2222  # a second sshd under `setarch i686` (unfit_services)
BUSY_NODE, BUSY_PORT = LB, 5000  # held by `python3 -m http.server` (unfit_services)
TRUST_ON_FIRST_USE = "trust-on-first-use"
# The drop-in on each client that keeps its users but root to the load balancer's address.
ALLOW_DROP_IN = "/etc/ssh/sshd_config.d/sshe2e-through-the-lb.conf"
# What unfit_services starts leaves its pid files here (/run: not in a snapshot).
ARCH_PIDFILE = "/run/sshe2e-sshd-2222.pid"
BUSY_PIDFILE = "/run/sshe2e-http-5000.pid"
BUSY_DIR = "/run/sshe2e-http-5000"

# What a machine changes on its own, left out of the file lists (path patterns, with why). The
# lists hold names, types, modes and owners, never contents or times, so a file that is only
# rewritten (e2scrub's stamp at every boot, apt's and dpkg's state) changes nothing. Measured on
# idle machines after `lab up` and the fixture's logins: snapshots a minute and 23 minutes apart
# (systemd-tmpfiles-clean.timer ran in between), and around the fixture's checks (logins as
# deploy and nosudo, sudo, client3's second sshd, the web server on port 5000), were equal with
# or without these exclusions. They cover what appears on its own later, or on machines that are
# not the lab's:
VOLATILE: dict[str, str] = {
    # A Persistent timer's stamp appears at its first run: fstrim.timer's (weekly) is not
    # there yet on a new machine; e2scrub_all's is.
    r"^/var/lib/systemd/timers/stamp-[^/]+$": "a Persistent systemd timer's stamp (fstrim: weekly)",
    # apt-daily refreshes the lists and its stamps (masked in the lab's base; on a real machine
    # it runs twice a day).
    r"^/var/lib/apt/lists(/.*)?$": "apt's package lists (apt-daily.timer)",
    r"^/var/lib/apt/periodic(/.*)?$": "apt-daily's stamps",
    # A DHCP client's leases (the lab's machines have static addresses; a real machine may not).
    r"^/var/lib/dhcp(/.*)?$": "DHCP leases",
}
_VOLATILE_RE = [re.compile(p) for p in VOLATILE]
SNAPSHOT_DIRS = ("/etc", "/usr/local", "/opt", "/var/lib")
_SECTION = "@@@@ sshe2e snapshot section "

SNAPSHOT_SCRIPT = f"""\
set -u
section() {{ printf '%s%s\\n' '{_SECTION}' "$1"; }}
section passwd; getent passwd
section group; getent group
section hostname; hostname; cat /etc/hostname
section /etc/hosts; cat /etc/hosts
section /etc/resolv.conf; cat /etc/resolv.conf
section unit-files; systemctl list-unit-files --no-legend --no-pager --full | awk '{{print $1, $2, $3}}'
section sudoers; cat /etc/sudoers
for f in /etc/sudoers.d/*; do printf '# %s\\n' "$f"; cat "$f"; done
for d in {' '.join(SNAPSHOT_DIRS)}; do
  section "files $d"
  find "$d" -printf '%y %m %u:%g %p\\n' 2>/dev/null | LC_ALL=C sort -k4
done
"""

Snapshot = dict[str, list[str]]


@dataclass(frozen=True)
class Host:
    """One existing machine as the stack lists it."""

    node: str
    address: str
    host_key: str  # its sshd's ed25519 public key, "ssh-ed25519 AAAA..." (no comment)

    @property
    def machine(self) -> str:
        """Its lab machine's name."""
        return PREFIX + self.node


@dataclass(frozen=True)
class SshHosts:
    """The five machines, the run's key pair and OpenSSH config, and each machine's snapshot
    from before any cluster (taken once every user had logged in once)."""

    hosts: dict[str, Host]
    key_file: Path  # deploy's (and nosudo's) private key
    ssh_config: Path  # the key and known_hosts with every machine's key pinned
    before: dict[str, Snapshot]

    def __getitem__(self, node: str) -> Host:
        return self.hosts[node]


# ---------------------------------------------------------------- running things

def lab(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`python3 -m lab ARGS`."""
    return run(["python3", "-m", "lab", *args], cwd=ROOT, check=check, timeout=timeout)


def as_root(node: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """SCRIPT run by root's shell on NODE's machine (the lab's key)."""
    return lab("ssh", PREFIX + node, script, check=check)


def ssh(hosts: SshHosts, user: str, node: str, command: str, *, port: int = 22,
        jump: bool | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """COMMAND run as USER on NODE over plain OpenSSH from the lab network, with the run's key
    and NODE's pinned host key. JUMP (default: for the clients) goes through the load balancer
    as deploy (`ssh -J`)."""
    via = (node in CLIENTS) if jump is None else jump
    jump_args = ["-J", f"{USER}@{hosts[LB].address}"] if via else []
    return lab("exec", "--", "ssh", "-F", str(hosts.ssh_config), *jump_args, "-p", str(port),
               f"{user}@{hosts[node].address}", command, check=check, timeout=120)


def key_of(pub_line: str) -> str:
    """"TYPE BLOB" of a public key line (its comment left off)."""
    keytype, blob = pub_line.split()[:2]
    return f"{keytype} {blob}"


def scanned_host_key(address: str, port: int = 22) -> str:
    """The ed25519 key the sshd at ADDRESS:PORT presents, "ssh-ed25519 AAAA..." (ssh-keyscan
    from the lab network)."""
    out = lab("exec", "--", "ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(port), address).stdout
    keys = [key_of(line.split(None, 1)[1]) for line in out.splitlines() if line and not line.startswith("#")]
    assert len(keys) == 1, f"ssh-keyscan {address}:{port}: {out!r}"
    return keys[0]


# ---------------------------------------------------------------- making and removing

def setup_script(node: str, public_key: str) -> str:
    """Root's script that makes NODE's users, sudo rule and (on a client) sshd drop-in."""
    users = [USER, NOSUDO] if node == NOSUDO_NODE else [USER]
    lines = ["set -eu"]
    for user in users:
        lines += [f"useradd --create-home --shell /bin/bash {user}",
                  f"install -d -m 700 -o {user} -g {user} /home/{user}/.ssh",
                  f"printf '%s\\n' '{public_key}' > /home/{user}/.ssh/authorized_keys",
                  f"chown {user}:{user} /home/{user}/.ssh/authorized_keys",
                  f"chmod 600 /home/{user}/.ssh/authorized_keys"]
    lines += [f"printf '%s\\n' '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{USER}",
              f"chmod 0440 /etc/sudoers.d/{USER}",
              "visudo -cq"]
    if node in CLIENTS:
        allowed = " ".join(f"{user}@{ADDRESSES[LB]}" for user in users)
        lines += [f"printf '%s\\n' '# sshe2e: users but root log in from the load balancer only' "
                  f"'AllowUsers root {allowed}' > {ALLOW_DROP_IN}",
                  "sshd -t",
                  "systemctl reload ssh"]
    return "\n".join(lines) + "\n"


def machine_names() -> list[str]:
    """The lab machines of this test that exist now."""
    status = json.loads(lab("status", "--json").stdout)
    return sorted(m["name"] for m in status if m["name"].startswith(PREFIX))


def remove_hosts() -> None:
    """`python3 -m lab down` every machine of this test (those that exist)."""
    for name in machine_names():
        lab("down", name)


def _up(node: str) -> str:
    """Bring NODE's machine up; its host key."""
    containers = ["--containers"] if node in CLIENTS else []
    out = lab("up", PREFIX + node, "--address", ADDRESSES[node], *containers).stdout
    return key_of(json.loads(out)["host_key_public"])


def make_hosts(base: Path) -> SshHosts:
    """The five machines as described above, under BASE the run's key and ssh config; each
    user has logged in once (so a first login's traces are in the snapshots taken last)."""
    remove_hosts()  # an interrupted earlier run's
    key_file = base / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshe2e-deploy", "-f", str(key_file)])
    public_key = key_of(key_file.with_name(key_file.name + ".pub").read_text())
    with ThreadPoolExecutor(len(NODES)) as pool:
        keys = dict(zip(NODES, pool.map(_up, NODES), strict=True))
    hosts = {node: Host(node, ADDRESSES[node], keys[node]) for node in NODES}
    known_hosts = base / "known_hosts"
    known_hosts.write_text("".join(f"{h.address} {h.host_key}\n" for h in hosts.values())
                           + f"[{ADDRESSES[ARCH_NODE]}]:{ARCH_PORT} {keys[ARCH_NODE]}\n")
    ssh_config = base / "ssh_config"
    ssh_config.write_text(f"""\
Host *
  IdentityFile {key_file}
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile {known_hosts}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
""")
    for node in NODES:
        as_root(node, setup_script(node, public_key))
    reachable = SshHosts(hosts, key_file, ssh_config, {})
    for node in CLIENTS:
        # sshd applies the drop-in at its reload: wait until a direct login is refused.
        wait_until(f"{node}'s sshd refuses {USER} from outside the load balancer",
                   functools.partial(refuses_direct_login, reachable, node))
    for node in NODES:
        users = [USER, NOSUDO] if node == NOSUDO_NODE else [USER]
        for user in users:
            ssh(reachable, user, node, "sudo -n true 2>/dev/null; true", check=True)
    return SshHosts(hosts, key_file, ssh_config, snapshot_all())


def refuses_direct_login(hosts: SshHosts, node: str) -> bool:
    """NODE's sshd refuses deploy when it comes straight from the lab network."""
    return refused(ssh(hosts, USER, node, "true", jump=False))


def refused(proc: subprocess.CompletedProcess[str]) -> bool:
    """An ssh login that sshd refused (the client's exit code 255 and sshd's refusal)."""
    return proc.returncode == 255 and "Permission denied" in proc.stderr


# ---------------------------------------------------------------- what the unfit stack needs

def start_unfit_services() -> None:
    """On client3 a second sshd on port 2222 under `setarch i686`; on the load balancer
    `python3 -m http.server 5000`. Both record their pid under /run (not in a snapshot); each
    is waited for until it listens."""
    as_root(ARCH_NODE, f"(setsid setarch i686 /usr/sbin/sshd -D -p {ARCH_PORT} -o PidFile={ARCH_PIDFILE} "
                       "</dev/null >/dev/null 2>&1 &)")
    as_root(BUSY_NODE, f"mkdir -p {BUSY_DIR}; cd {BUSY_DIR}; (setsid python3 -m http.server {BUSY_PORT} "
                       f"</dev/null >/dev/null 2>&1 & echo $! > {BUSY_PIDFILE})")
    for node, port in ((ARCH_NODE, ARCH_PORT), (BUSY_NODE, BUSY_PORT)):
        wait_until(f"something listens on {node}'s port {port}", functools.partial(listening, node, port))


def stop_unfit_services() -> None:
    """Stop what start_unfit_services started (whatever of it runs), and wait until the ports
    are free."""
    for node, pidfile in ((ARCH_NODE, ARCH_PIDFILE), (BUSY_NODE, BUSY_PIDFILE)):
        as_root(node, f"if [ -s {pidfile} ]; then kill $(cat {pidfile}) 2>/dev/null || true; fi; "
                      f"rm -f {pidfile}; rm -rf {BUSY_DIR if node == BUSY_NODE else '/nonexistent'}")
    for node, port in ((ARCH_NODE, ARCH_PORT), (BUSY_NODE, BUSY_PORT)):
        wait_until(f"nothing listens on {node}'s port {port} any more",
                   functools.partial(free, node, port))


def listening(node: str, port: int) -> bool:
    """Something listens on NODE's TCP port PORT."""
    return bool(as_root(node, f"ss -Hltn 'sport = :{port}'").stdout.strip())


def free(node: str, port: int) -> bool:
    """Nothing listens on NODE's TCP port PORT."""
    return not listening(node, port)


# ---------------------------------------------------------------- the stack's config

def render_stack_config(hosts: SshHosts, overrides: Mapping[str, Mapping[str, object]] | None = None) -> str:
    """Pulumi.<stack>.yaml of a stack on these machines with the `ssh` provider: user deploy
    with the run's key, the clients through the load balancer as bastion (its key pinned),
    every key pinned but the root server's (trusted on first use), the toolchain's binaries
    uploaded. OVERRIDES: per node, settings of its entry to change."""
    overrides = overrides or {}

    def entry(node: str) -> dict[str, object]:
        host = hosts[node]
        return {"address": host.address,
                "hostKey": TRUST_ON_FIRST_USE if node == ROOT_SERVER else host.host_key,
                "user": USER, "port": 22, "privateKeyFile": str(hosts.key_file),
                "viaBastion": node in CLIENTS, **overrides.get(node, {})}

    lb = hosts[LB]
    config = {"config": {
        "hashicluster:domain": DOMAIN,
        "hashicluster:machines": {
            "provider": "ssh",
            "servers": [entry(ROOT_SERVER)],
            "loadBalancers": [entry(LB)],
            "clients": [entry(client) for client in CLIENTS],
            "bastion": {"address": lb.address, "port": 22, "user": USER,
                        "privateKeyFile": str(hosts.key_file), "hostKey": lb.host_key},
        },
        # The machines have no internet: the controller uploads the toolchain's binaries.
        "hashicluster:install": {"source": "upload"},
    }}
    return ("# Existing machines over SSH (tests/e2e/sshhosts.py)\n"
            + yaml.safe_dump(config, sort_keys=False, width=4096))


# ---------------------------------------------------------------- snapshots

def volatile(line: str) -> bool:
    """A line of a file list (`TYPE MODE OWNER PATH`) whose path changes on its own."""
    path = line.split(" ", 3)[-1]
    return any(p.search(path) for p in _VOLATILE_RE)


def snapshot(node: str) -> Snapshot:
    """What a cluster may change on NODE's machine: users, groups, hostname, /etc/hosts,
    /etc/resolv.conf, the unit files and their state, the sudoers, and the file lists (type,
    mode, owner, path) of SNAPSHOT_DIRS without the VOLATILE paths."""
    out = as_root(node, SNAPSHOT_SCRIPT).stdout
    sections: Snapshot = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith(_SECTION):
            current = sections.setdefault(line.removeprefix(_SECTION), [])
        elif current is not None:
            current.append(line)
    for name, lines in sections.items():
        if name.startswith("files "):
            sections[name] = [line for line in lines if not volatile(line)]
    expected = {"passwd", "group", "hostname", "/etc/hosts", "/etc/resolv.conf", "unit-files", "sudoers",
                *(f"files {d}" for d in SNAPSHOT_DIRS)}
    assert set(sections) == expected, f"{node}: the snapshot has sections {sorted(sections)}\n{out[-2000:]}"
    return sections


def snapshot_all() -> dict[str, Snapshot]:
    """Every machine's snapshot, by node."""
    with ThreadPoolExecutor(len(NODES)) as pool:
        return dict(zip(NODES, pool.map(snapshot, NODES), strict=True))


def snapshot_diff(before: Snapshot, after: Snapshot, label: str = "") -> str:
    """A unified diff per section that differs ("" when they are equal)."""
    parts = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old != new:
            diff = difflib.unified_diff(old, new, f"{label}{name} before", f"{label}{name} now", n=1,
                                        lineterm="")
            parts.append("\n".join(diff))
    return "\n".join(parts)


def changes_since(hosts: SshHosts) -> str:
    """How every machine differs from its snapshot before any cluster ("" when none does)."""
    now = snapshot_all()
    return "\n".join(d for node in NODES if (d := snapshot_diff(hosts.before[node], now[node], f"{node}: ")))
