"""The host programs the lab needs, and `lab deps` to install the missing ones with apt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab import log
from lab.errors import LabError

# program -> Debian package that provides it
PROGRAMS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
    "setsid": "util-linux",
    "mount": "mount",
    "umount": "mount",
}

# debootstrap checks Debian's Release files against this keyring. Debian hosts have it;
# Ubuntu and others do not unless the package is installed.
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEBIAN_KEYRING_PACKAGE = "debian-archive-keyring"

# What each lab verb needs on the host.
BASE_PROGRAMS = ("debootstrap",)
MACHINE_PROGRAMS = ("systemd-nspawn", "ip", "ssh", "ssh-keygen", "nsenter", "setsid", "mount",
                    "umount")
NETWORK_PROGRAMS = ("ip", "nsenter")


def missing_packages(programs: tuple[str, ...] | list[str] = tuple(PROGRAMS),
                     keyring: Path = DEBIAN_KEYRING) -> list[str]:
    """The packages to install so that every program in PROGRAMS is on PATH (and, when
    debootstrap is among them, Debian's archive keyring is in place)."""
    packages = [PROGRAMS[p] for p in programs if shutil.which(p) is None]
    if "debootstrap" in programs and not keyring.exists():
        packages.append(DEBIAN_KEYRING_PACKAGE)
    return sorted(set(packages))


def require_debian_keyring(keyring: Path = DEBIAN_KEYRING) -> None:
    """Fail early, naming the package, if debootstrap cannot check Debian's archive."""
    if not keyring.exists():
        raise LabError(f"{keyring} is missing: debootstrap of the lab's Debian base checks "
                       "Debian's archive with it (Ubuntu and other non-Debian hosts do not have "
                       "it by default)",
                       f"apt-get install {DEBIAN_KEYRING_PACKAGE} (or `python3 -m lab deps`)")


def require(*programs: str) -> None:
    """Fail early, naming the packages to install, if any of PROGRAMS is missing."""
    missing = missing_packages(list(programs))
    if missing:
        raise LabError(f"missing host package(s): {', '.join(missing)}", "python3 -m lab deps")


def require_root() -> None:
    """The lab mounts, makes namespaces and cgroups: only root can."""
    if os.geteuid() != 0:
        raise LabError("the lab must run as root (it mounts file systems and creates network "
                       "namespaces and cgroups)", "run it with sudo, or as root")


def install() -> int:
    """Install the missing packages with apt-get; update the package lists only if needed."""
    require_root()
    missing = missing_packages()
    if not missing:
        log.info("every lab dependency is installed")
        return 0
    if shutil.which("apt-get") is None:
        raise LabError(f"missing host package(s) {', '.join(missing)} and no apt-get to install "
                       "them", "install them with this host's package manager")
    log.info(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if _call(cmd, env) != 0:
        log.info("install failed; updating the package lists and trying again")
        if _call(["apt-get", "update"], env) != 0 or _call(cmd, env) != 0:
            raise LabError(f"could not install {' '.join(missing)} with apt-get (output above)",
                           f"install them by hand: apt-get install {' '.join(missing)}")
    still = missing_packages()
    if still:
        raise LabError(f"apt-get finished but {', '.join(still)} still provide no programs",
                       "check the apt output above")
    return 0


def _call(cmd: list[str], env: dict[str, str]) -> int:
    """Run an apt command with its output on stderr."""
    return subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                           stderr=sys.stderr)
