"""Machines: `up` (create or boot), `down` (destroy), `status`.

A machine's state directory holds its record (machine.json), the overlay's upper and
work directories, the mount point of its root (root/) and its console log. How its
systemd-nspawn runs depends on the host (lab.hostkind decides):

- systemd is PID 1: as the main process of a transient service of its own (lab.units);
  systemd starts it again when the machine asks for a reboot (exit code 133).
- otherwise: as

      setsid -f sh -c LOOP hashicluster-lab-machine DIR

  in cgroups the lab makes (lab.cgroups): the shell loop starts systemd-nspawn again when
  the machine asks for a reboot and ends when the machine powers off or `down` stops it.

Either way systemd-nspawn is started through templates/lab/boot-machine.sh, which reads its
command line from DIR/nspawn.args at every start: a setting changed while the machine runs
(`up --containers` on a machine made without) is written there, the machine is told that it
needs a reboot (Debian's /run/reboot-required, inside it), and its next boot applies it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab import base, cgroups, deps, hostkind, hostlimits, log, mounts, netns, proc, sshkeys, units
from lab.errors import LabError
from lab.locks import locked
from lab.names import (
    check_address,
    check_hostname,
    check_name,
    check_prefix_len,
    netns_name,
    veth_name,
)
from lab.paths import Paths

SUPERVISOR_TAG = "hashicluster-lab-machine"
# $1 = machine dir (the systemd-nspawn command is in its nspawn.args).
SUPERVISOR_LOOP = """\
dir=$1
while :; do
  bash "$dir/boot-machine.sh" "$dir"
  rc=$?
  if [ "$rc" -ne 133 ] || [ -e "$dir/stop" ]; then exit "$rc"; fi
  echo "lab: the machine asked for a reboot; starting it again" >&2
done
"""
NSPAWN_TMPFS = Path("/run/systemd/nspawn")

# What a machine made with `up --containers` gets, so that Docker and Nomad's exec driver run in
# it as on a VM (README, "Containers in the lab"):
# - CAP_NET_ADMIN (Docker's bridge and iptables rules; nspawn keeps it from a machine by default),
#   and the keyring system calls, which runc uses and nspawn's seccomp filter refuses;
# - /var/lib/docker bound from the machine's state directory on the host's filesystem: overlay2
#   does not work on the overlayfs that is the machine's root;
# - IP forwarding in its network namespace (published ports), set from outside like any
#   net.* sysctl;
# - a unit that makes the cgroup v1 controllers writable at boot (templates/lab/cgroups-rw.*).
CONTAINERS_NSPAWN_OPTIONS = ("--capability=CAP_NET_ADMIN", "--system-call-filter=@keyring")
CONTAINERS_SYSCTLS = {"net.ipv4.ip_forward": "1"}
CGROUPS_RW_SCRIPT = Path(__file__).resolve().parent.parent / "templates" / "lab" / "cgroups-rw.sh"
CGROUPS_RW_UNIT = CGROUPS_RW_SCRIPT.with_suffix(".service")
CGROUPS_RW_NAME = "hashicluster-lab-cgroups-rw"
BOOT_SCRIPT = CGROUPS_RW_SCRIPT.with_name("boot-machine.sh")
# Inside a machine: Debian's mark that it must be rebooted for a change to apply.
REBOOT_REQUIRED = Path("run/reboot-required")
RECORD = "machine.json"
PERSONALIZED = "personalized"
STOP_TIMEOUT = 30.0
# `down` deletes the machine with its disk: what runs in it is killed, not shut down (a client
# that a change takes away left the cluster in its steps' removals before its machine goes).
DOWN_TIMEOUT = 0.0


@dataclass
class Record:
    """What the lab remembers about a machine."""

    name: str
    address: str
    prefix_len: int
    hostname: str
    suite: str
    base: str
    netns: str
    veth: str
    sysctls: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    containers: bool = False  # runs containers (Docker, Nomad's exec driver): see CONTAINERS_*


@dataclass(frozen=True)
class MachineDirs:
    """The paths of one machine's state."""

    dir: Path

    @property
    def record(self) -> Path:
        return self.dir / RECORD

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def stop_file(self) -> Path:
        return self.dir / "stop"

    @property
    def nspawn_args(self) -> Path:
        """systemd-nspawn's command line, NUL-separated, read at every start."""
        return self.dir / "nspawn.args"

    @property
    def boot_script(self) -> Path:
        """The machine's copy of templates/lab/boot-machine.sh (a moved checkout still boots it)."""
        return self.dir / BOOT_SCRIPT.name

    @property
    def docker(self) -> Path:
        """/var/lib/docker of a machine that runs containers."""
        return self.dir / "docker"


def dirs(paths: Paths, name: str) -> MachineDirs:
    """The state paths of machine NAME."""
    return MachineDirs(paths.machine(name))


def load(paths: Paths, name: str) -> Record | None:
    """The machine's record, or None if there is none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads(dirs(paths, name).record.read_text())
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def save(paths: Paths, rec: Record) -> None:
    """Write the machine's record atomically."""
    d = dirs(paths, rec.name)
    d.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = d.record.with_name(RECORD + ".tmp")
    tmp.write_text(json.dumps(asdict(rec), indent=2) + "\n")
    os.replace(tmp, d.record)


def names(paths: Paths) -> list[str]:
    """Every machine with a state directory."""
    if not paths.machines.is_dir():
        return []
    return sorted(p.name for p in paths.machines.iterdir() if p.is_dir())


@contextmanager
def global_lock(paths: Paths) -> Iterator[None]:
    """Serialises changes to shared things: base, key, switch, records, known_hosts."""
    with locked(paths.locks / "lab.lock"):
        yield


@contextmanager
def machine_lock(paths: Paths, name: str) -> Iterator[None]:
    """Serialises `up` and `down` of one machine."""
    with locked(paths.locks / f"{name}.lock"):
        yield


# ---------------------------------------------------------------- processes

def nspawn_processes(root: Path) -> list[proc.Process]:
    """The systemd-nspawn processes running the machine whose root is ROOT."""
    flag = f"--directory={root}"
    return [p for p in proc.processes() if p.exe_name == "systemd-nspawn" and flag in p.argv]


def supervisor_processes(machine_dir: Path) -> list[proc.Process]:
    """The restart loops of the machine whose state directory is MACHINE_DIR."""
    return [p for p in proc.processes()
            if len(p.argv) > 4 and p.argv[3] == SUPERVISOR_TAG and p.argv[4] == str(machine_dir)]


def is_running(paths: Paths, name: str) -> bool:
    """True if the machine's systemd-nspawn is running."""
    return bool(nspawn_processes(dirs(paths, name).root))


def power(paths: Paths, name: str) -> str:
    """Machine NAME's power: "running", "stopped" (its disk is kept) or "gone" (no such machine).
    One look at the process table, for callers that ask about one machine often (a refresh)."""
    if load(paths, name) is None:
        return "gone"
    return "running" if is_running(paths, name) else "stopped"


# ---------------------------------------------------------------- up

def _validate_new(paths: Paths, name: str, address: ipaddress.IPv4Address) -> None:
    """Refuse an address or interface name that another machine already has."""
    veth = veth_name(name)
    for other in names(paths):
        if other == name:
            continue
        rec = load(paths, other)
        if rec is None:
            continue
        if rec.address == str(address):
            raise LabError(f"address {address} is already used by the lab machine {other!r}",
                           f"pick another address, or `python3 -m lab down {other}` first")
        if rec.veth == veth:
            raise LabError(f"machine names {name!r} and {other!r} map to the same interface name "
                           f"{veth}", "pick a name that differs in its first six characters")


def _check_same(rec: Record, address: str, prefix_len: int, hostname: str) -> None:
    """An existing machine keeps its address and hostname (its containers setting may change:
    see with_containers)."""
    want = (address, prefix_len, hostname)
    have = (rec.address, rec.prefix_len, rec.hostname)
    if want != have:
        raise LabError(
            f"machine {rec.name!r} exists with address {rec.address}/{rec.prefix_len} and hostname "
            f"{rec.hostname!r}, not {address}/{prefix_len} and {hostname!r}",
            f"`python3 -m lab down {rec.name}` first, or `up` it with its existing settings")


def with_containers(rec: Record, containers: bool, sysctls: dict[str, str]) -> Record:
    """REC with its containers setting and the sysctls that go with it (SYSCTLS: those asked
    for besides)."""
    own = {k: v for k, v in rec.sysctls.items() if k not in CONTAINERS_SYSCTLS}
    return dataclasses.replace(rec, containers=containers,
                               sysctls={**(CONTAINERS_SYSCTLS if containers else {}), **own, **sysctls})


def ensure_nspawn_tmpfs(paths: Paths) -> None:
    """A tmpfs on /run/systemd/nspawn, unless it already lives on one (as under systemd)."""
    if mounts.fstype_of(NSPAWN_TMPFS) == "tmpfs":
        return
    NSPAWN_TMPFS.mkdir(parents=True, exist_ok=True)
    proc.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", str(NSPAWN_TMPFS)])
    paths.runtime.mkdir(parents=True, exist_ok=True)
    paths.nspawn_tmpfs_marker.touch()


def personalize(paths: Paths, rec: Record, root: Path) -> None:
    """Give a new machine its own identity: machine-id, hostname, hosts, host key, root key."""
    machine_id = uuid.uuid4().hex + "\n"
    for path in (root / "etc" / "machine-id", root / "var" / "lib" / "dbus" / "machine-id"):
        path.unlink(missing_ok=True)
        path.write_text(machine_id)
    (root / "etc" / "hostname").write_text(rec.hostname + "\n")
    aliases = rec.hostname if "." not in rec.hostname else \
        f"{rec.hostname} {rec.hostname.split('.', 1)[0]}"
    (root / "etc" / "hosts").write_text(base.HOSTS + f"{rec.address}\t{aliases}\n")
    sshkeys.make_host_key(root, rec.hostname)
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(sshkeys.public_key(paths) + "\n")
    keys.chmod(0o600)


def install_cgroups_rw(root: Path) -> None:
    """The boot-time unit that makes the cgroup controllers writable, enabled (offline)."""
    script = root / "usr" / "local" / "sbin" / CGROUPS_RW_NAME
    script.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CGROUPS_RW_SCRIPT, script)
    script.chmod(0o755)
    unit = root / "etc" / "systemd" / "system" / f"{CGROUPS_RW_NAME}.service"
    shutil.copyfile(CGROUPS_RW_UNIT, unit)
    wants = root / "etc" / "systemd" / "system" / "sysinit.target.wants"
    wants.mkdir(exist_ok=True)
    link = wants / unit.name
    link.unlink(missing_ok=True)
    link.symlink_to(f"/etc/systemd/system/{unit.name}")


def nspawn_command(rec: Record, root: Path, register: bool) -> list[str]:
    """The systemd-nspawn command that boots the machine (see the module docstring).

    --keep-unit always: nspawn runs in the unit (or the lab's cgroups) it was started in
    rather than making a scope of its own. REGISTER: tell systemd-machined about it
    (only where systemd is PID 1 with a system bus). --system-call-filter=bpf: nspawn's
    seccomp filter refuses bpf(2) by default, and on a cgroup v2 host a task's device rules
    are eBPF programs: without it Nomad's executor fails every task ("failed to set v2 cgroup
    resources: bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted").
    """
    command = [
        "systemd-nspawn", f"--directory={root}", f"--machine={rec.name}",
        f"--hostname={rec.hostname}", "--boot",
        f"--register={'yes' if register else 'no'}", "--keep-unit",
        f"--network-namespace-path={netns.netns_path(rec.netns)}",
        "--console=read-only", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
        "--system-call-filter=bpf",
    ]
    if rec.containers:
        command += [*CONTAINERS_NSPAWN_OPTIONS, f"--bind={MachineDirs(root.parent).docker}:/var/lib/docker"]
    return command


def write_boot(rec: Record, d: MachineDirs, register: bool) -> bool:
    """Put what the machine's next boot reads in place: the nspawn command line, the boot
    script, and what running containers needs inside. True if the command line changed."""
    if rec.containers:
        d.docker.mkdir(mode=0o711, exist_ok=True)
        install_cgroups_rw(d.root)
    shutil.copyfile(BOOT_SCRIPT, d.boot_script)
    args = "".join(a + "\0" for a in nspawn_command(rec, d.root, register)).encode()
    if d.nspawn_args.is_file() and d.nspawn_args.read_bytes() == args:
        return False
    tmp = d.nspawn_args.with_name(d.nspawn_args.name + ".tmp")
    tmp.write_bytes(args)
    os.replace(tmp, d.nspawn_args)
    return True


def mark_reboot_required(name: str, root: Path, reason: str) -> None:
    """Tell the running machine that it needs a reboot: Debian's /run/reboot-required, written
    through the /proc root of its init (its /run is its own tmpfs, gone at the reboot)."""
    inits = [p for n in nspawn_processes(root) for p in proc.processes() if p.ppid == n.pid]
    if not inits:
        raise LabError(f"{name} runs, but its init was not found", "`python3 -m lab status`")
    mark = Path(f"/proc/{inits[0].pid}/root") / REBOOT_REQUIRED
    mark.write_text(f"*** System restart required ({reason}) ***\n")
    log.info(f"{name}: {reason}; it applies at the machine's next reboot (/{REBOOT_REQUIRED})")


def start(paths: Paths, rec: Record) -> None:
    """Mount the overlay, (re)make the network and start the machine's restart loop."""
    d = dirs(paths, rec.name)
    if not mounts.is_mountpoint(d.root):
        mounts.mount_overlay(Path(rec.base), d.upper, d.work, d.root)
    if not (d.dir / PERSONALIZED).exists():
        personalize(paths, rec, d.root)
        (d.dir / PERSONALIZED).touch()
    netns.create_machine_net(rec.name, ipaddress.IPv4Address(rec.address), rec.prefix_len,
                             rec.sysctls)
    d.stop_file.unlink(missing_ok=True)
    kind = hostkind.current()
    write_boot(rec, d, kind.registers_with_machined)
    boot = ["bash", str(d.boot_script), str(d.dir)]
    with d.console.open("ab") as console:
        console.write(f"--- lab: starting {rec.name} at {time.ctime()} ({kind.manager})\n"
                      .encode())
    if kind.manager == hostkind.SYSTEMD:
        units.start(rec.name, boot, d.console, STOP_TIMEOUT)
    else:
        start_in_own_cgroups(rec, d)
    deadline = time.monotonic() + 10
    while not nspawn_processes(d.root):
        if time.monotonic() > deadline:
            raise LabError(f"systemd-nspawn for {rec.name} did not start",
                           f"read {d.console}")
        time.sleep(0.05)


def start_in_own_cgroups(rec: Record, d: MachineDirs) -> None:
    """Start the restart loop, detached, in the machine's own cgroups (no systemd PID 1)."""
    cgroup_paths = cgroups.machine_cgroups(rec.name)
    with d.console.open("ab") as console:
        subprocess.run(
            ["setsid", "-f", "sh", "-c", SUPERVISOR_LOOP, SUPERVISOR_TAG, str(d.dir)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, close_fds=True, check=True,
            preexec_fn=lambda: cgroups.join(cgroup_paths))


def _console_tail(path: Path, lines: int = 12) -> str:
    """The last non-empty lines of a console log, without colours, for error messages."""
    try:
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", path.read_text(errors="replace"))
    except OSError:
        return ""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("  | " + line for line in kept)


def _reserve(paths: Paths, name: str, addr: ipaddress.IPv4Address, prefix_len: int,
             hostname: str, suite: str, sysctls: dict[str, str], containers: bool,
             mirror: str | None) -> tuple[Record, bool]:
    """Under the global lock: check the request, make the shared pieces, record the machine.

    Returns the record and whether this call created it.
    """
    with global_lock(paths):
        rec = load(paths, name)
        if rec is not None:
            _check_same(rec, str(addr), prefix_len, hostname)
            if rec.containers != containers:
                rec = with_containers(rec, containers, sysctls)
                save(paths, rec)
        else:
            _validate_new(paths, name, addr)
        base_dir = base.for_machine(paths, name, suite, rec.base if rec else None, mirror)
        sshkeys.ensure_key(paths)
        netns.ensure_switch()
        ensure_nspawn_tmpfs(paths)
        created = rec is None
        if rec is None:
            rec = Record(name=name, address=str(addr), prefix_len=prefix_len, hostname=hostname,
                         suite=suite, base=str(base_dir), netns=netns_name(name),
                         veth=veth_name(name), created=time.time(), containers=containers,
                         sysctls={**(CONTAINERS_SYSCTLS if containers else {}), **sysctls})
            save(paths, rec)
        if not hostkind.uses_systemd():
            cgroups.create(name)
    return rec, created


def _boot(paths: Paths, rec: Record) -> str:
    """Start the machine unless it runs (a running one whose settings changed is told to
    reboot); record its host key; return the key's .pub line."""
    d = dirs(paths, rec.name)
    with machine_lock(paths, rec.name):
        if is_running(paths, rec.name):
            log.info(f"{rec.name} is already running")
            if write_boot(rec, d, hostkind.current().registers_with_machined):
                for key, value in rec.sysctls.items():
                    netns.sysctl(rec.netns, key, value)
                mark_reboot_required(rec.name, d.root, "lab: its containers setting changed")
        else:
            stop(paths, rec.name, timeout=10)  # what a crashed earlier run may have left
            log.info(f"starting {rec.name} at {rec.address}")
            start(paths, rec)
        host_key = (d.root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().strip()
    with global_lock(paths):
        sshkeys.known_hosts_add(paths, rec.address, host_key)
    return host_key


def _failed(paths: Paths, name: str, err: Exception, created: bool) -> LabError:
    """The error for a machine that did not come up; a machine made by this call is removed."""
    d = dirs(paths, name)
    tail = _console_tail(d.console)
    problem = f"{name}: {err.problem if isinstance(err, LabError) else err}"
    if tail:
        problem += f"\nthe end of its console log:\n{tail}"
    if created:
        log.info(f"{name} failed to come up; removing it")
        down(paths, name)
        return LabError(problem, "fix the cause above and run `up` again (raise --timeout if "
                        "the host is just slow)")
    return LabError(problem, f"read {d.console}; `python3 -m lab down {name}` and `up` again")


def up(paths: Paths, name: str, address: str, prefix_len: int, hostname: str | None,
       suite: str, sysctls: dict[str, str], timeout: float, mirror: str | None,
       containers: bool = False) -> dict[str, Any]:
    """Create (or boot, or find running) the machine and wait until it is ready."""
    deps.require_root()
    check_name(name)
    addr = check_address(address, check_prefix_len(prefix_len))
    hostname = check_hostname(hostname or name)
    for key in sysctls:
        netns.check_sysctl(key)
    deps.require(*deps.BASE_PROGRAMS, *deps.MACHINE_PROGRAMS)
    if load(paths, name) is None and dirs(paths, name).dir.exists():
        log.info(f"removing what an earlier, interrupted {name} left behind")
        with machine_lock(paths, name):
            teardown(paths, name, timeout=10)
    hostlimits.ensure_inotify_instances(len(netns.lab_namespaces()) + 1)
    rec, created = _reserve(paths, name, addr, prefix_len, hostname, suite, sysctls, containers,
                            mirror)
    try:
        host_key = _boot(paths, rec)
        state = sshkeys.wait_ready(paths, addr, timeout)
    except (LabError, OSError, subprocess.SubprocessError) as err:
        raise _failed(paths, name, err, created) from None
    log.info(f"{name} is {state}")
    return {"name": name, "address": str(addr), "user": "root", "hostname": hostname,
            "private_key_path": str(paths.private_key), "host_key_public": host_key,
            "ssh_port": 22, "netns": rec.netns}


# ---------------------------------------------------------------- down

def stop(paths: Paths, name: str, timeout: float) -> None:
    """Power the machine off (SIGTERM to nspawn), escalating to SIGKILL after TIMEOUT."""
    d = dirs(paths, name)
    if d.dir.is_dir():
        d.stop_file.touch()
    if hostkind.uses_systemd():
        units.stop(name, timeout)
    pids = [p.pid for p in nspawn_processes(d.root)]
    if pids:
        log.info(f"stopping {name}")
        proc.terminate(pids, timeout)
    # The loop exits once nspawn has; anything left in the cgroups is a crash's leftover.
    loops = [p.pid for p in supervisor_processes(d.dir)]
    if proc.wait_gone(loops, 3):
        proc.terminate(loops, 2)
    for path in cgroups.machine_cgroups(name):
        cgroups.kill(path)


def teardown(paths: Paths, name: str, timeout: float) -> None:
    """Stop the machine and remove its mounts, network, cgroups, host key and state."""
    d = dirs(paths, name)
    rec = load(paths, name)
    stop(paths, name, timeout)
    mounts.unmount_tree(d.dir)
    netns.delete_machine_net(name)
    with global_lock(paths):
        for path in cgroups.machine_cgroups(name):
            cgroups.remove(path)
        cgroups.remove_empty_parents()
        if rec is not None:
            sshkeys.known_hosts_remove(paths, rec.address)
    if d.dir.exists():
        if mounts.mounts_under(d.dir):
            raise LabError(f"{d.dir} still has mounts; not deleting it",
                           "python3 -m lab clean-all")
        shutil.rmtree(d.dir)


def down(paths: Paths, name: str, timeout: float = DOWN_TIMEOUT) -> None:
    """Destroy the machine (after TIMEOUT seconds of clean power-off, killed); succeed if it
    does not exist."""
    deps.require_root()
    check_name(name)
    with machine_lock(paths, name):
        teardown(paths, name, timeout)
    log.info(f"{name} is gone")


def power_off(paths: Paths, name: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a machine and keep it: its disk, address and host key stay; `up` boots it again."""
    deps.require_root()
    check_name(name)
    if load(paths, name) is None:
        raise LabError(f"there is no machine {name}", "`python3 -m lab status` lists them")
    with machine_lock(paths, name):
        stop(paths, name, timeout)
    log.info(f"{name} is stopped")


# ---------------------------------------------------------------- status

def memory_bytes(name: str) -> int | None:
    """The machine's memory use as its unit or memory cgroup counts it (None if not available)."""
    if hostkind.uses_systemd():
        return units.memory_bytes(name)
    for path in cgroups.machine_cgroups(name):
        for fname in ("memory.current", "memory.usage_in_bytes"):  # v2, v1
            try:
                return int((path / fname).read_text())
            except (OSError, ValueError):
                continue
    return None


def status(paths: Paths) -> list[dict[str, Any]]:
    """Every machine: name, address, hostname, running, nspawn pid, memory."""
    result = []
    for name in names(paths):
        rec = load(paths, name)
        found = nspawn_processes(dirs(paths, name).root)
        result.append({
            "name": name,
            "address": rec.address if rec else None,
            "hostname": rec.hostname if rec else None,
            "running": bool(found),
            "pid": found[0].pid if found else None,
            "unit": units.unit_name(name) if hostkind.uses_systemd() else None,
            "memory_bytes": memory_bytes(name) if found else None,
        })
    return result
