"""A libvirt daemon for hosts without one: this project's test hosts (no systemd as PID 1).

`python3 -m vagrantbox host up` starts virtlogd and libvirtd inside a network namespace of
their own (`hcl-vagrant`), so the networks libvirt and Vagrant create (bridges, dnsmasq,
NAT rules) exist only there, with no way out of the host. Vagrant and Pulumi then run in
that namespace too (`python3 -m vagrantbox exec -- CMD`). On a workstation where libvirtd
already runs (systemd starts it), `host up` only checks that it answers.

`host clean` removes what the project's Vagrant stacks left in libvirt (domains and disks
named `hashicluster-*`, their networks), then stops the daemons it started.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from vagrantbox.errors import BoxError
from vagrantbox.host import (
    BOOT_TOOLS,
    BUILD_TOOLS,
    install_packages,
    log,
    missing_packages,
    require_tools,
    run,
)

NETNS = "hcl-vagrant"
URI = "qemu:///system"
DOMAIN_PREFIX = "hashicluster-"
# libvirt-qemu is the user Debian's libvirt resolves at start-up (its packaging for systemd
# hosts creates it); QEMU itself runs as root here, without a security driver.
QEMU_USER = "libvirt-qemu"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
QEMU_CONF_TEXT = (
    "# Written by hashicluster (python3 -m vagrantbox host up) for a host without systemd.\n"
    'user = "root"\ngroup = "root"\nsecurity_driver = "none"\n'
)
DIRS = ("/var/log/libvirt/qemu", "/var/lib/libvirt/images", "/run/libvirt")
HOST_TOOLS: dict[str, str] = {
    "libvirtd": "libvirt-daemon-driver-qemu",
    "virtlogd": "libvirt-daemon",
    "virsh": "libvirt-clients",
    "dnsmasq": "dnsmasq-base",
    "iptables": "iptables",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "vagrant": "vagrant-libvirt",
}
PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}


def virsh(*args: str, check: bool = True) -> str:
    """`virsh -c qemu:///system ARGS`, stdout."""
    if check:
        return run(["virsh", "-q", "-c", URI, *args], quiet=True)
    proc = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    return proc.stdout if proc.returncode == 0 else ""


def answers() -> bool:
    """True when a libvirt daemon serves qemu:///system."""
    if shutil.which("virsh") is None:
        return False
    proc = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, check=False,
                          stdin=subprocess.DEVNULL)
    return proc.returncode == 0


def _running(name: str) -> int | None:
    try:
        pid = int(PIDFILES[name].read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _ensure_netns() -> None:
    if not Path("/run/netns", NETNS).exists():
        run(["ip", "netns", "add", NETNS])
        run(["ip", "-n", NETNS, "link", "set", "lo", "up"])


def _prepare_host() -> None:
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        run(["groupadd", "--system", "-f", QEMU_USER])
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/libvirt",
             "--shell", "/usr/sbin/nologin", "-g", QEMU_USER, QEMU_USER])
    if not QEMU_CONF.exists():
        QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
        QEMU_CONF.write_text(QEMU_CONF_TEXT)
    for d in DIRS:
        Path(d).mkdir(parents=True, exist_ok=True)


def host_deps() -> None:
    """Install what building the box and running Vagrant VMs on libvirt need (Debian packages)."""
    packages = missing_packages({**HOST_TOOLS, **BUILD_TOOLS, **BOOT_TOOLS})
    plugin = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "vagrant-libvirt"], capture_output=True,
                            text=True, check=False)
    if "installed" not in plugin.stdout and "vagrant-libvirt" not in packages:
        packages.append("vagrant-libvirt")
    install_packages(packages)


def host_up(timeout: float = 30.0) -> None:
    """Make qemu:///system answer: start virtlogd and libvirtd in NETNS unless one already does."""
    require_tools(HOST_TOOLS)
    if answers():
        return
    if os.geteuid() != 0:
        raise BoxError("no libvirt daemon answers on qemu:///system and starting one needs root. "
                       "Fix: start libvirtd (systemctl start libvirtd) or run this as root")
    _prepare_host()
    _ensure_netns()
    for daemon in ("virtlogd", "libvirtd"):
        if _running(daemon) is None:
            log(f"starting {daemon} in the network namespace {NETNS}")
            run(["ip", "netns", "exec", NETNS, daemon, "--daemon", "--pid-file", str(PIDFILES[daemon])])
    deadline = time.monotonic() + timeout
    while not answers():
        if time.monotonic() > deadline:
            raise BoxError(f"libvirtd did not answer on {URI} within {timeout:.0f} s; "
                           "see /var/log/libvirt/libvirtd.log")
        time.sleep(0.2)


def project_domains() -> list[str]:
    """Every libvirt domain the project's Vagrant stacks made (running or not)."""
    return [d for d in virsh("list", "--all", "--name", check=False).split() if d.startswith(DOMAIN_PREFIX)]


def project_volumes() -> list[str]:
    """Disks of the project's domains in the default pool (the box's base image excluded)."""
    listing = virsh("vol-list", "default", check=False)
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [n for n in names if n.startswith(DOMAIN_PREFIX)]


def networks() -> list[str]:
    """Every libvirt network (on a test host they are all the project's)."""
    return virsh("net-list", "--all", "--name", check=False).split()


def host_clean(stop: bool = True) -> None:
    """Remove the project's domains, their disks and networks; stop daemons this module started."""
    if not answers():
        _stop_daemons()
        return
    for domain in project_domains():
        log(f"removing the libvirt domain {domain}")
        virsh("destroy", domain, check=False)
        virsh("undefine", domain, "--remove-all-storage", check=False)
    for volume in project_volumes():
        virsh("vol-delete", volume, "--pool", "default", check=False)
    if _running("libvirtd") is not None:  # a daemon of ours: its networks are ours too
        for network in networks():
            log(f"removing the libvirt network {network}")
            virsh("net-destroy", network, check=False)
            virsh("net-undefine", network, check=False)
    if stop:
        _stop_daemons()


def _stop_daemons() -> None:
    for daemon in ("libvirtd", "virtlogd"):
        pid = _running(daemon)
        if pid is None:
            continue
        os.kill(pid, 15)
        for _ in range(50):
            if _running(daemon) is None:
                break
            time.sleep(0.1)
        PIDFILES[daemon].unlink(missing_ok=True)
    if Path("/run/netns", NETNS).exists():
        subprocess.run(["ip", "netns", "delete", NETNS], check=False)


def exec_in_netns(command: list[str]) -> int:
    """Run COMMAND inside NETNS when this host's libvirtd runs there, else as it is."""
    if Path("/run/netns", NETNS).exists() and _running("libvirtd") is not None:
        command = ["ip", "netns", "exec", NETNS, *command]
    return subprocess.run(command, check=False).returncode
