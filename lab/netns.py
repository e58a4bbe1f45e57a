"""The lab network: the switch namespace with its bridge, and one namespace per machine."""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import re
from pathlib import Path

from lab import proc
from lab.errors import LabError
from lab.names import (
    BRIDGE,
    BRIDGE_ADDRESS,
    HOST_LINK,
    HOST_LINK_ADDRESS,
    HOST_LINK_PEER,
    LAB_NETWORK,
    MACHINE_IFACE,
    NETNS_PREFIX,
    SWITCH_NETNS,
    netns_name,
    veth_name,
)

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
BRIDGE_MAC = "02:68:63:6c:00:01"  # locally administered
# Set in every lab namespace: nothing is ever forwarded between interfaces.
NO_FORWARDING = {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"}


def netns_path(ns: str) -> Path:
    """The bind-mounted namespace file `ip netns` keeps for NS."""
    return NETNS_DIR / ns


def exists(ns: str) -> bool:
    """True if the named network namespace exists."""
    return netns_path(ns).exists()


def lab_namespaces() -> list[str]:
    """Every network namespace with the lab prefix (the switch's and the machines')."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(NETNS_PREFIX))
    except FileNotFoundError:
        return []


def enter(ns: str) -> None:
    """Move the calling thread (and the children it starts) into the named namespace."""
    enter_path(netns_path(ns))


def enter_path(path: Path) -> None:
    """setns(2) into the network namespace file PATH."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise LabError(f"cannot open the network namespace {path}: {err.strerror}",
                       "run the lab as root; `python3 -m lab exec true` recreates the lab network"
                       ) from None
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise LabError(f"cannot enter the network namespace {path}: {os.strerror(errno)}",
                           "run the lab as root")
    finally:
        os.close(fd)


def _ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS` and return its stdout."""
    return proc.run(["ip", *args], check=check).stdout


def _link_exists(ns: str, link: str) -> bool:
    """True if LINK exists in the namespace NS."""
    return proc.run(["ip", "-n", ns, "link", "show", "dev", link], check=False).returncode == 0


def check_sysctl(key: str) -> str:
    """KEY if it names a network sysctl (the only kind a machine has its own of)."""
    if not re.fullmatch(r"net(\.[A-Za-z0-9_-]+)+", key):
        raise LabError(f"sysctl {key!r} is not a net.* key; only network sysctls are per machine",
                       "pass --sysctl net.KEY=VALUE")
    return key


def sysctl(ns: str, key: str, value: str) -> None:
    """Set a net.* sysctl of NS from outside (inside a machine, /proc/sys/net is read-only)."""
    check_sysctl(key)
    path = "/proc/sys/" + key.replace(".", "/")
    proc.run(["nsenter", f"--net={netns_path(ns)}", "sh", "-c", 'printf "%s\\n" "$2" > "$1"',
              "sh", path, value], fix=f"check that {key} exists (`sysctl -a | grep {key}`)")


def _configure_lo(ns: str) -> None:
    """Loopback up and no forwarding, in a fresh namespace."""
    _ip("-n", ns, "link", "set", "lo", "up")
    for key, value in NO_FORWARDING.items():
        sysctl(ns, key, value)


def ensure_switch() -> None:
    """Create the switch namespace and its bridge (10.210.0.1/16) unless they exist."""
    if not exists(SWITCH_NETNS):
        _ip("netns", "add", SWITCH_NETNS)
        _configure_lo(SWITCH_NETNS)
    if not _link_exists(SWITCH_NETNS, BRIDGE):
        # A fixed MAC: otherwise the bridge takes a port's, and it changes when that
        # machine goes, leaving stale ARP entries for the driver in every other machine.
        _ip("-n", SWITCH_NETNS, "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge",
            "stp_state", "0", "forward_delay", "0")
    cidr = f"{BRIDGE_ADDRESS}/{LAB_NETWORK.prefixlen}"
    info = json.loads(_ip("-n", SWITCH_NETNS, "-j", "addr", "show", "dev", BRIDGE) or "[]")
    have = {f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])}
    if cidr not in have:
        _ip("-n", SWITCH_NETNS, "addr", "add", cidr, "dev", BRIDGE)
    _ip("-n", SWITCH_NETNS, "link", "set", BRIDGE, "up")


def _host_link_exists() -> bool:
    return bool(json.loads(_ip("-j", "link", "show", "dev", HOST_LINK, check=False) or "[]"))


def host_link_up() -> str:
    """The host's own link to the lab switch: a veth pair, HOST_LINK in the host's namespace
    with HOST_LINK_ADDRESS, its peer on the bridge. The kernel routes the lab network through
    it (the link's own prefix route); nothing else of the host's network changes. Idempotent;
    the switch must exist. Returns the route the host now has."""
    if not exists(SWITCH_NETNS):
        raise LabError("the lab switch does not exist yet", "start a machine first: python3 -m lab up NAME")
    cidr = f"{HOST_LINK_ADDRESS}/{LAB_NETWORK.prefixlen}"
    if not _host_link_exists():
        taken = json.loads(_ip("-j", "route", "show", str(LAB_NETWORK)) or "[]")
        if taken:
            raise LabError(f"this host already routes {LAB_NETWORK} ({taken[0].get('dev', '?')}): the lab "
                           "network would collide with it", "remove that route, or keep to the loopback "
                           "forwards (python3 -m lab forward)")
        _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", HOST_LINK_PEER, "netns", SWITCH_NETNS)
    _ip("-n", SWITCH_NETNS, "link", "set", HOST_LINK_PEER, "master", BRIDGE, "up")
    info = json.loads(_ip("-j", "addr", "show", "dev", HOST_LINK) or "[]")
    have = {f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])}
    if cidr not in have:
        _ip("addr", "add", cidr, "dev", HOST_LINK)
    _ip("link", "set", HOST_LINK, "up")
    return f"{LAB_NETWORK} dev {HOST_LINK}"


def host_link_down() -> bool:
    """Remove the host's link to the switch (its peer and route go with it); False if there
    was none."""
    if not _host_link_exists():
        return False
    _ip("link", "del", HOST_LINK)
    return True


def host_link_route() -> str | None:
    """The host's route to the lab network through its link, or None."""
    routes = json.loads(_ip("-j", "route", "show", str(LAB_NETWORK), "dev", HOST_LINK, check=False) or "[]")
    return f"{LAB_NETWORK} dev {HOST_LINK}" if routes else None


def machine_mac(address: ipaddress.IPv4Address) -> str:
    """A fixed, locally administered MAC for the machine at ADDRESS.

    A machine made again at the same address keeps its MAC, so the ARP entries the switch and
    the other machines still hold for it stay right (with a new random MAC they point at a
    veth that is gone, and the new machine is unreachable until they expire, about a minute).
    """
    b = address.packed
    return f"02:68:63:{b[1]:02x}:{b[2]:02x}:{b[3]:02x}"


def create_machine_net(name: str, address: ipaddress.IPv4Address, prefix_len: int,
                       sysctls: dict[str, str]) -> None:
    """A fresh namespace for NAME with eth0 = ADDRESS/PREFIX_LEN, its veth peer on the bridge."""
    ns, veth = netns_name(name), veth_name(name)
    delete_machine_net(name)
    _ip("netns", "add", ns)
    _configure_lo(ns)
    _ip("-n", SWITCH_NETNS, "link", "add", veth, "type", "veth", "peer", "name", MACHINE_IFACE,
        "address", machine_mac(address), "netns", ns)
    _ip("-n", SWITCH_NETNS, "link", "set", veth, "master", BRIDGE, "up")
    _ip("-n", ns, "addr", "add", f"{address}/{prefix_len}", "dev", MACHINE_IFACE)
    _ip("-n", ns, "link", "set", MACHINE_IFACE, "up")
    subnet = ipaddress.IPv4Network(f"{address}/{prefix_len}", strict=False)
    if BRIDGE_ADDRESS not in subnet:
        # A narrow subnet still reaches the driver (ssh, pulumi) on the bridge.
        _ip("-n", ns, "route", "add", f"{BRIDGE_ADDRESS}/32", "dev", MACHINE_IFACE)
    for key, value in sysctls.items():
        sysctl(ns, key, value)


def delete_machine_net(name: str) -> None:
    """Remove the machine's veth and namespace (absent pieces are fine)."""
    veth = veth_name(name)
    if exists(SWITCH_NETNS) and _link_exists(SWITCH_NETNS, veth):
        _ip("-n", SWITCH_NETNS, "link", "del", veth, check=False)
    delete_netns(netns_name(name))


def delete_netns(ns: str) -> None:
    """`ip netns del NS`, tolerating a namespace that is already gone or half gone."""
    path = netns_path(ns)
    if not (path.exists() or path.is_symlink()):
        return
    if proc.run(["ip", "netns", "del", ns], check=False).returncode != 0:
        proc.run(["umount", "--lazy", str(path)], check=False)
        path.unlink(missing_ok=True)
