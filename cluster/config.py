"""Typed stack configuration: raw Pulumi config strings in, a validated ClusterSpec out.

Pure code: no Pulumi imports, no resources. Every error names the config key, what was
wrong and the command that fixes it, so a bad value stops `pulumi up` before anything
is created.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

NAMESPACE = "hashicluster"

MachineProvider = Literal["nspawn", "vagrant"]
MACHINE_PROVIDERS: tuple[MachineProvider, ...] = ("nspawn", "vagrant")

# Addresses are handed out from fixed offsets inside the machine network, so a node's
# address never depends on how many nodes of another role exist.
SERVER_OFFSET = 10
LB_OFFSET = 20
CLIENT_OFFSET = 30
MAX_SERVERS = 9
MAX_CLIENTS = 200

_DOMAIN_RE = re.compile(r"^(?=.{1,100}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_BOX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class ConfigError(ValueError):
    """A stack config value is missing or wrong. The message names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = f"{NAMESPACE}:{key}"
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.key}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class NspawnSettings:
    """Lab machines: systemd-nspawn containers on this host (see lab/)."""

    network: ipaddress.IPv4Network


@dataclass(frozen=True)
class VagrantSettings:
    """Vagrant boxes, one VM per node."""

    network: ipaddress.IPv4Network
    box: str
    provider: str
    driver: Literal["kvm", "qemu"]
    cpus: int
    memory: int


@dataclass(frozen=True)
class MachinesSpec:
    provider: MachineProvider
    nspawn: NspawnSettings | None = None
    vagrant: VagrantSettings | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        settings = self.nspawn or self.vagrant
        assert settings is not None
        return settings.network


@dataclass(frozen=True)
class ClusterSpec:
    """Everything the program needs to know, validated."""

    stack: str
    domain: str
    servers: int
    clients: int
    machines: MachinesSpec
    datacenter: str = "dc1"


# The keys this program reads, with the parser for each. Anything else under the
# namespace is a typo and is refused.
KEYS = ("domain", "servers", "clients", "datacenter", "machines")


def _fix_set(key: str, example: str) -> str:
    return f"pulumi config set {NAMESPACE}:{key} {example}"


def _fix_set_path(key: str, example: str) -> str:
    return f"pulumi config set --path '{NAMESPACE}:{key}' {example}"


def _parse_int(key: str, raw: str, low: int, high: int, example: str) -> int:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected a whole number from {low} to {high}, got {raw!r}",
                          _fix_set(key, example))
    if not low <= value <= high:
        raise ConfigError(key, f"must be from {low} to {high}, got {value}", _fix_set(key, example))
    return value


def _parse_name(key: str, raw: str, pattern: re.Pattern[str], what: str, example: str) -> str:
    if not pattern.match(raw):
        raise ConfigError(key, f"{raw!r} is not {what}", _fix_set(key, example))
    return raw


def _parse_object(key: str, raw: str, example: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected an object (a YAML mapping), got {raw!r}",
                          _fix_set_path(f"{key}.provider", example))
    return value


def _check_keys(key: str, obj: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in obj:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", f"unknown setting (known: {', '.join(allowed)})",
                              "remove it or correct the spelling in Pulumi.<stack>.yaml")


def _network(key: str, value: Any, default: str, highest_host: int) -> ipaddress.IPv4Network:
    if value is None:
        value = default
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as err:
        raise ConfigError(key, f"{value!r} is not an IPv4 network in CIDR form ({err})",
                          _fix_set_path(key, default)) from None
    if not net.is_private:
        raise ConfigError(key, f"{net} is not a private network; machines must use a private range",
                          _fix_set_path(key, default))
    if net.num_addresses - 2 < highest_host:
        raise ConfigError(key, f"{net} is too small: the last client needs host number {highest_host}",
                          _fix_set_path(key, "a larger network such as " + default))
    return net


def _object_int(key: str, value: Any, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"expected a whole number from {low} to {high}, got {value!r}",
                          _fix_set_path(key, str(default)))
    return value


def _machines(raw: str | None, highest_host: int) -> MachinesSpec:
    key = "machines"
    if raw is None:
        raise ConfigError(key, "not set; every stack names its machine provider",
                          _fix_set_path(f"{key}.provider", "nspawn"))
    obj = _parse_object(key, raw, "nspawn")
    provider = obj.get("provider")
    if provider not in MACHINE_PROVIDERS:
        raise ConfigError(f"{key}.provider",
                          f"{provider!r} is not a machine provider (one of: {', '.join(MACHINE_PROVIDERS)})",
                          _fix_set_path(f"{key}.provider", "nspawn"))
    if provider == "nspawn":
        _check_keys(key, obj, ("provider", "network"))
        network = _network(f"{key}.network", obj.get("network"), "10.210.1.0/24", highest_host)
        lab_net = ipaddress.IPv4Network("10.210.0.0/16")
        if not network.subnet_of(lab_net) or network.network_address == lab_net.network_address:
            raise ConfigError(f"{key}.network",
                              f"{network} is outside the lab switch's network {lab_net} "
                              "(or overlaps its first /24, which the switch uses)",
                              _fix_set_path(f"{key}.network", "10.210.1.0/24"))
        return MachinesSpec(provider="nspawn", nspawn=NspawnSettings(network=network))
    _check_keys(key, obj, ("provider", "network", "box", "vagrantProvider", "driver", "cpus", "memory"))
    network = _network(f"{key}.network", obj.get("network"), "192.168.56.0/24", highest_host)
    box = obj.get("box", "debian/bookworm64")
    if not isinstance(box, str) or not _BOX_RE.match(box):
        raise ConfigError(f"{key}.box", f"{box!r} is not a Vagrant box name",
                          _fix_set_path(f"{key}.box", "debian/bookworm64"))
    vprovider = obj.get("vagrantProvider", "libvirt")
    if vprovider not in ("libvirt", "virtualbox"):
        raise ConfigError(f"{key}.vagrantProvider", f"{vprovider!r} is not supported (libvirt, virtualbox)",
                          _fix_set_path(f"{key}.vagrantProvider", "libvirt"))
    driver = obj.get("driver", "kvm")
    if driver not in ("kvm", "qemu"):
        raise ConfigError(f"{key}.driver",
                          f"{driver!r} is not a libvirt driver "
                          "(kvm, or qemu for plain emulation without KVM)",
                          _fix_set_path(f"{key}.driver", "qemu"))
    return MachinesSpec(provider="vagrant", vagrant=VagrantSettings(
        network=network, box=box, provider=vprovider, driver=driver,
        cpus=_object_int(f"{key}.cpus", obj.get("cpus"), 2, 1, 64),
        memory=_object_int(f"{key}.memory", obj.get("memory"), 1024, 256, 262144),
    ))


def load(raw: Mapping[str, str], stack: str) -> ClusterSpec:
    """Validate the raw config of one stack (keys without the namespace, values as strings)."""
    for name in raw:
        if name not in KEYS:
            raise ConfigError(name, f"unknown setting (known: {', '.join(KEYS)})",
                              f"pulumi config rm {NAMESPACE}:{name}")
    domain = _parse_name("domain", raw.get("domain", "demo"), _DOMAIN_RE,
                         "a lowercase DNS domain", "demo")
    datacenter = _parse_name("datacenter", raw.get("datacenter", "dc1"),
                             re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$"), "a datacenter name", "dc1")
    servers = _parse_int("servers", raw.get("servers", "1"), 1, MAX_SERVERS, "1")
    if servers % 2 == 0:
        raise ConfigError("servers", f"{servers} servers cannot keep a quorum through a failure "
                          "better than one fewer; use an odd number", _fix_set("servers", "3"))
    clients = _parse_int("clients", raw.get("clients", "3"), 1, MAX_CLIENTS, "3")
    machines = _machines(raw.get("machines"), CLIENT_OFFSET + clients)
    return ClusterSpec(stack=stack, domain=domain, servers=servers, clients=clients,
                       machines=machines, datacenter=datacenter)
