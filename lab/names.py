"""Names and addresses: what a machine may be called and where it may sit on the lab switch."""

from __future__ import annotations

import hashlib
import ipaddress
import re

from lab.errors import LabError

LAB_NETWORK = ipaddress.IPv4Network("10.210.0.0/16")
SWITCH_SUBNET = ipaddress.IPv4Network("10.210.0.0/24")  # reserved for the switch itself
BRIDGE_ADDRESS = ipaddress.IPv4Address("10.210.0.1")
# The host's own link to the switch (`lab link up`): its address there, and the two ends.
HOST_LINK_ADDRESS = ipaddress.IPv4Address("10.210.0.254")
HOST_LINK = "hcl-host"  # in the host's namespace
HOST_LINK_PEER = "hcl-host-sw"  # on the bridge, in the switch's namespace
SWITCH_NETNS = "hcl-lab"
BRIDGE = "br-lab"
NETNS_PREFIX = "hcl-"
MACHINE_IFACE = "eth0"
IFNAMSIZ = 15  # longest Linux interface name

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
RESERVED_NAMES = frozenset({"lab"})  # `hcl-lab` is the switch's namespace


def check_name(name: str) -> str:
    """Return NAME if it is a valid machine name, else raise LabError saying why."""
    if not _NAME_RE.match(name):
        raise LabError(
            f"invalid machine name {name!r}: use 1 to 40 characters of lowercase letters, digits "
            "and '-', starting and ending with a letter or digit",
            "pick a name such as `lab-client1`")
    if name in RESERVED_NAMES:
        raise LabError(f"the machine name {name!r} is reserved (hcl-{name} is the lab switch)",
                       "pick another name, such as `lab-server`")
    return name


def check_hostname(hostname: str) -> str:
    """Return HOSTNAME if it is a valid host name (dots allowed, at most 64 chars)."""
    labels = hostname.split(".")
    if len(hostname) > 64 or not all(_LABEL_RE.match(label) for label in labels):
        raise LabError(f"invalid hostname {hostname!r}: use dot-separated labels of letters, "
                       "digits and '-', at most 64 characters in all",
                       "pass --hostname like `client1.demo`, or leave it out to use the name")
    return hostname


def check_prefix_len(prefix_len: int) -> int:
    """Machines' subnets must lie inside the lab network."""
    if not LAB_NETWORK.prefixlen <= prefix_len <= 30:
        raise LabError(f"invalid --prefix-len {prefix_len}: it must be {LAB_NETWORK.prefixlen} to "
                       "30, so the machine's subnet lies inside the lab network "
                       f"{LAB_NETWORK}", f"use --prefix-len {LAB_NETWORK.prefixlen} (the default)")
    return prefix_len


def check_address(address: str, prefix_len: int = LAB_NETWORK.prefixlen) -> ipaddress.IPv4Address:
    """Parse ADDRESS and check that a machine may use it on the lab switch."""
    fix = (f"pick a free address such as 10.210.1.11: inside {LAB_NETWORK}, outside "
           f"{SWITCH_SUBNET}, and not the first or last address of its subnet")
    try:
        addr = ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(f"invalid address {address!r}: not an IPv4 address", fix) from None
    if addr not in LAB_NETWORK:
        raise LabError(f"address {addr} is outside the lab network {LAB_NETWORK}", fix)
    if addr in SWITCH_SUBNET:
        raise LabError(f"address {addr} is in {SWITCH_SUBNET}, which the lab switch reserves "
                       f"(the bridge is {BRIDGE_ADDRESS})", fix)
    subnet = ipaddress.IPv4Network(f"{addr}/{check_prefix_len(prefix_len)}", strict=False)
    if addr in (subnet.network_address, subnet.broadcast_address):
        raise LabError(f"address {addr} is the network or broadcast address of {subnet}", fix)
    return addr


def netns_name(name: str) -> str:
    """The machine's network namespace."""
    return f"{NETNS_PREFIX}{name}"


def veth_name(name: str) -> str:
    """The switch-side end of the machine's veth pair: readable, unique, at most 15 chars.

    `v-` + up to 6 characters of the name + `-` + 6 hex digits of the name's SHA-256,
    so names sharing a prefix still differ.
    """
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    stem = name[:6].rstrip("-")
    result = f"v-{stem}-{digest}"
    assert len(result) <= IFNAMSIZ
    return result
