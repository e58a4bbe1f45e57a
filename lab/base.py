"""The cached base root filesystem: one debootstrap, shared read-only by every machine."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from lab import deps, log, mounts, proc
from lab.errors import LabError
from lab.paths import Paths

DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    # what the lab itself needs: systemd as PID 1, sshd for the driver, dbus for systemctl
    "systemd", "systemd-sysv", "openssh-server", "dbus",
    # what makes a machine usable like a small VM (each is small)
    "iproute2", "iputils-ping", "netbase", "python3", "ca-certificates", "curl", "procps",
    "less", "sudo", "unzip", "iptables",
    # what some machines run, installed everywhere because machines have no internet; the
    # load balancer's reverse proxy (http proxy and upstream modules are built into `nginx`;
    # nginx-light only adds the echo module)
    "nginx",
    # the container engine of the clients (Debian's docker.io, with containerd and runc); it
    # runs only in machines made with `lab up --containers`
    "docker.io",
    # the cluster's image registry (on the load balancer), and the DNS forwarder that sends
    # *.consul names to the local Consul agent
    "docker-registry", "dnsmasq",
)
# Units that only make sense with internet access (the lab has none).
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer")
# Units of PACKAGES that stay off unless the program turns them on (`systemctl enable --now`
# on the machines that need them).
DISABLED_UNITS = ("nginx.service", "docker.service", "docker.socket", "containerd.service",
                  "docker-registry.service", "dnsmasq.service")
# Bumped when the way a base is prepared changes, so that bases made the old way are rebuilt
# (4: the registry and dnsmasq; 3: Docker; 2: units turned off whatever the host has
# installed; 1 left nginx on where the host had none).
RECIPE_REVISION = 4
SSHD_CONFIG = """\
# Lab machines: root logs in with the lab key only; one host key type for every client.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
"""
HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
RESOLV_CONF = """\
# Lab machines have no DNS server (nothing outside the lab is reachable);
# names come from /etc/hosts.
"""
_SUITE_RE = re.compile(r"^[a-z]+$")


def check_suite(suite: str) -> str:
    """A Debian code name such as bookworm."""
    if not _SUITE_RE.match(suite):
        raise LabError(f"invalid suite {suite!r}: expected a Debian code name",
                       "use --suite bookworm")
    return suite


def _sources_entries(apt_dir: Path) -> list[tuple[str, str]]:
    """(URI, suite) of each `deb` source in apt's sources.list and sources.list.d."""
    entries: list[tuple[str, str]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], words[2]))
    for f in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            entries.extend((uri, suite) for uri in fields.get("uris", "").split()
                           for suite in fields.get("suites", "").split())
    return entries


def host_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's apt uses (for SUITE if listed), else deb.debian.org."""
    entries = [(uri, s) for uri, s in _sources_entries(apt_dir)
               if uri.startswith(("http://", "https://")) and "debian" in uri]
    for uri, s in entries:
        if s == suite:
            return uri
    for uri, s in entries:
        if re.fullmatch(r"[a-z]+", s):  # the main archive of another release
            return uri
    return DEFAULT_MIRROR


def recipe_hash(packages: Iterable[str] = PACKAGES, masked: Iterable[str] = MASKED_UNITS,
                disabled: Iterable[str] = DISABLED_UNITS) -> str:
    """8 hex digits naming what goes into a base: the include list and the units turned off.

    Order and repeats do not matter; any added, removed or renamed entry changes it.
    """
    text = "\n".join([",".join(sorted(set(packages))), ",".join(sorted(set(masked))),
                      ",".join(sorted(set(disabled))), f"revision {RECIPE_REVISION}"])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def key(suite: str) -> str:
    """The cache key of the current base of SUITE: `<suite>-<recipe hash>`."""
    return f"{check_suite(suite)}-{recipe_hash()}"


def path(paths: Paths, suite: str) -> Path:
    """Where the current base of SUITE lives: <cache>/lab/base-<suite>-<recipe hash>.

    A change to PACKAGES or to the units turned off gives a new path, so the next `base` or
    `up` builds it; machines made from an older base keep theirs (their record names it).
    """
    return paths.base(key(suite))


def is_ready(base: Path) -> bool:
    """True if BASE is a finished base (a build renames it into place only when done)."""
    return (base / "etc" / "os-release").exists()


def ensure(paths: Paths, suite: str, mirror: str | None = None) -> Path:
    """The base for SUITE, built first if it is missing. The caller holds the global lock."""
    base = path(paths, suite)
    if is_ready(base):
        return base
    return build(paths, suite, mirror)


def for_machine(paths: Paths, name: str, suite: str, recorded: str | None,
                mirror: str | None = None) -> Path:
    """The base machine NAME boots from. The caller holds the global lock.

    A machine that exists keeps the base it was made from (RECORDED), even once the current
    base of its suite has a newer recipe; a new machine gets the current base, built if needed.
    """
    if recorded is None:
        return ensure(paths, suite, mirror)
    base = Path(recorded)
    if not is_ready(base):
        raise LabError(f"machine {name!r} was made from the base {base}, which is gone",
                       f"`python3 -m lab down {name}` and `up` it again (on the current base)")
    return base


def older_bases(paths: Paths, suite: str) -> list[Path]:
    """Cached bases of SUITE other than the current one (older recipes, the unkeyed one)."""
    if not paths.base_dir.is_dir():
        return []
    current = path(paths, suite)
    pattern = re.compile(rf"^base-{re.escape(suite)}(-[0-9a-f]{{8}})?$")
    return sorted(p for p in paths.base_dir.iterdir()
                  if p != current and pattern.match(p.name) and p.is_dir())


def build(paths: Paths, suite: str, mirror: str | None = None) -> Path:
    """debootstrap SUITE into a temporary directory, prepare it, rename it into place."""
    deps.require_root()
    deps.require(*deps.BASE_PROGRAMS)
    deps.require_debian_keyring()
    base = path(paths, suite)
    mirror = mirror or host_mirror(suite)
    paths.base_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_builds(paths)
    tmp = paths.base_dir / f".{base.name}.building-{os.getpid()}"
    log.info(f"building the lab base {base} from {mirror} (debootstrap, about a minute)")
    start = time.monotonic()
    try:
        include = ",".join(PACKAGES)
        proc.run_visible(["debootstrap", "--variant=minbase", f"--include={include}", suite,
                          str(tmp), mirror],
                         fix=f"check that {mirror} is reachable, or pass --mirror URL")
        stop_processes_in(tmp)
        prepare(tmp)
        if base.exists():
            raise LabError(f"{base} appeared while building", "run `python3 -m lab base` again")
        os.rename(tmp, base)
    finally:
        if tmp.exists():
            stop_processes_in(tmp)
            _remove_tree(tmp)
    log.info(f"base ready in {time.monotonic() - start:.0f} s: {base}")
    older = older_bases(paths, suite)
    if older:
        log.info(f"older bases kept (machines made from them go on using them): "
                 f"{' '.join(p.name for p in older)} (`clean-all --purge` removes them)")
    return base


def processes_in(root: Path) -> list[proc.Process]:
    """Processes whose root directory is ROOT or below it (daemons a package started there)."""
    found = []
    for p in proc.processes():
        try:
            proc_root = Path(os.readlink(f"/proc/{p.pid}/root"))
        except OSError:
            continue
        if proc_root == root or root in proc_root.parents:
            found.append(p)
    return found


def stop_processes_in(root: Path) -> None:
    """Stop anything a package's maintainer script left running in the chroot ROOT.

    debootstrap forbids service starts while it installs (policy-rc.d), so normally there is
    nothing; a daemon left there would run in the host's network namespace.
    """
    left = processes_in(root)
    if left:
        log.info(f"stopping processes left running in {root}: "
                 f"{', '.join(f'{p.pid} ({p.exe_name})' for p in left)}")
        proc.terminate([p.pid for p in left], 5)


def remove_partial_builds(paths: Paths, suite: str | None = None) -> None:
    """Remove what interrupted builds left (with anything debootstrap mounted there)."""
    pattern = f".base-{suite}*.building-*" if suite else ".base-*.building-*"
    if paths.base_dir.is_dir():
        for partial in paths.base_dir.glob(pattern):
            builder = partial.name.rsplit("-", 1)[-1]
            if builder.isdigit() and int(builder) != os.getpid() \
                    and proc.read_process(int(builder)) is not None:
                continue  # another lab command is building it right now
            log.info(f"removing an interrupted base build: {partial}")
            _remove_tree(partial)


def _remove_tree(path: Path) -> None:
    """Unmount whatever is mounted inside PATH, then delete it."""
    mounts.unmount_tree(path)
    shutil.rmtree(path, ignore_errors=True)


def prepare(root: Path) -> None:
    """Turn a fresh debootstrap into a base: no identity of its own, root login by key."""
    etc = root / "etc"
    (etc / "machine-id").write_text("")  # each machine gets its own at `up`
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    (etc / "hostname").unlink(missing_ok=True)
    (etc / "hosts").write_text(HOSTS)
    resolv = etc / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text(RESOLV_CONF)
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "ssh" / "sshd_config.d").mkdir(exist_ok=True)
    (etc / "ssh" / "sshd_config.d" / "hashicluster-lab.conf").write_text(SSHD_CONFIG)
    for unit in MASKED_UNITS:
        link = etc / "systemd" / "system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for unit in DISABLED_UNITS:
        disable_unit(root, unit)
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    for deb in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()


def disable_unit(root: Path, unit: str) -> None:
    """`systemctl disable UNIT`, offline: remove the links that pull it in at boot.

    The unit stays installed and can be enabled (`systemctl enable --now UNIT`). Debian's
    postinst enables a service through /etc/systemd/system/*.wants/ links; its SysV rc.d links
    do not count where systemd finds the native unit. Those links are absolute: seen from the
    host they point into the host's own /lib and dangle where the host lacks the unit, so they
    are found by name, never by following them.
    """
    for wants in (root / "etc" / "systemd" / "system").glob("*.wants"):
        link = wants / unit
        if link.is_symlink():
            link.unlink()
