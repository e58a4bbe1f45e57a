"""What goes into the test VM's disk: a stock Debian with systemd as PID 1 and cgroup v2 only.

Pure (no I/O beyond reading the project's templates) so it can be unit tested. The VM stands
in for a user's host: everything the lab and `./run` install with apt is already there,
because nothing is fetched from inside the VM (it has no network).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vagrantbox import spec as boxspec

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "hostvm"
DEFAULT_SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SIZE_GB = 12
HOSTNAME = "hostvm"
SHARE_LABEL = "hcshare"
JOB_UNIT = "hostvm-job.service"
JOB_RUNNER = "/usr/local/sbin/hostvm-job"

PACKAGES: tuple[str, ...] = (
    # boot: kernel, initramfs, GRUB, systemd as PID 1
    "systemd", "systemd-sysv", "dbus", "udev", "kmod", "linux-image-cloud-amd64",
    "initramfs-tools", "grub-pc-bin", "grub2-common", "e2fsprogs", "util-linux", "mount",
    # what `./run` and the lab install with apt on a user's host
    "debootstrap", "debian-archive-keyring", "systemd-container", "iproute2", "openssh-client",
    "git", "python3", "python3-venv",
    # what the tests and a developer use beside it
    "nginx", "shellcheck", "curl", "ca-certificates", "iptables", "procps", "psmisc", "less",
    "unzip",
)
# Units that would only get in the way in a VM without network.
MASKED_UNITS: tuple[str, ...] = ("apt-daily.timer", "apt-daily-upgrade.timer",
                                 "e2scrub_all.timer", "fstrim.timer")
DISABLED_UNITS: tuple[str, ...] = ("nginx.service",)


@dataclass(frozen=True)
class VmSpec:
    """One VM image to build: its Debian suite and mirror."""

    suite: str = DEFAULT_SUITE
    mirror: str = DEFAULT_MIRROR

    @property
    def file_name(self) -> str:
        """The cached image's name: <suite>-<recipe hash>.qcow2."""
        return f"{self.suite}-{recipe_hash(self)}.qcow2"


def job_unit() -> str:
    """The oneshot unit that runs the share disk's job at boot."""
    return (TEMPLATES / JOB_UNIT).read_text()


def job_runner() -> str:
    """The script the unit runs: mount the share, run its job, power off."""
    return (TEMPLATES / "hostvm-job.sh").read_text()


def fstab(root_uuid: str) -> str:
    """/etc/fstab with the one root file system."""
    return boxspec.fstab(root_uuid)


def hosts() -> str:
    """/etc/hosts of the VM."""
    return boxspec.hosts(HOSTNAME)


def recipe_hash(vm: VmSpec) -> str:
    """12 hex digits naming everything that goes into the image: another recipe, another file."""
    parts = [vm.suite, vm.mirror, str(SIZE_GB), HOSTNAME, SHARE_LABEL, boxspec.KERNEL_CMDLINE,
             ",".join(PACKAGES), ",".join(MASKED_UNITS), ",".join(DISABLED_UNITS), job_unit(),
             job_runner(), hosts()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
