"""The cached base root filesystem: one debootstrap, shared read-only by every machine."""

from __future__ import annotations

import os
import re
import shutil
import time
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
)
# Units that only make sense with internet access (the lab has none).
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer")
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


def ensure(paths: Paths, suite: str, mirror: str | None = None) -> Path:
    """The base for SUITE, built first if it is missing. The caller holds the global lock."""
    base = paths.base(check_suite(suite))
    if (base / "etc" / "os-release").exists():
        return base
    return build(paths, suite, mirror)


def build(paths: Paths, suite: str, mirror: str | None = None) -> Path:
    """debootstrap SUITE into a temporary directory, prepare it, rename it into place."""
    deps.require_root()
    deps.require(*deps.BASE_PROGRAMS)
    base = paths.base(suite)
    mirror = mirror or host_mirror(suite)
    paths.base_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_builds(paths, suite)
    tmp = paths.base_dir / f".base-{suite}.building-{os.getpid()}"
    log.info(f"building the lab base {base} from {mirror} (debootstrap, about a minute)")
    start = time.monotonic()
    try:
        include = ",".join(PACKAGES)
        proc.run_visible(["debootstrap", "--variant=minbase", f"--include={include}", suite,
                          str(tmp), mirror],
                         fix=f"check that {mirror} is reachable, or pass --mirror URL")
        prepare(tmp)
        if base.exists():
            raise LabError(f"{base} appeared while building", "run `python3 -m lab base` again")
        os.rename(tmp, base)
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    log.info(f"base ready in {time.monotonic() - start:.0f} s: {base}")
    return base


def remove_partial_builds(paths: Paths, suite: str | None = None) -> None:
    """Remove what interrupted builds left (with anything debootstrap mounted there)."""
    pattern = f".base-{suite}.building-*" if suite else ".base-*.building-*"
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
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    for deb in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
