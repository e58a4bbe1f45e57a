"""Typed stack configuration: raw Pulumi config strings in, a validated ClusterSpec out.

Pure code: no Pulumi imports, no resources. Every error names the config key, what was
wrong and the command that fixes it, so a bad value stops `pulumi up` before anything
is created.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cluster.jobfiles import JobFileError, task_drivers

NAMESPACE = "hashicluster"

MachineProvider = Literal["nspawn", "vagrant", "ssh"]
InstallSource = Literal["release", "upload"]
INSTALL_SOURCES: tuple[InstallSource, ...] = ("release", "upload")
DEFAULT_MIRROR = "https://releases.hashicorp.com"
MACHINE_PROVIDERS: tuple[MachineProvider, ...] = ("nspawn", "vagrant", "ssh")

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


VagrantDriver = Literal["auto", "kvm", "qemu"]
# Per machine role (server, lb, client): CPUs and MiB of memory when the config sets none.
VAGRANT_CPUS = {"server": 2, "lb": 1, "client": 2}
VAGRANT_MEMORY = {"server": 1024, "lb": 512, "client": 1024}


@dataclass(frozen=True)
class VagrantSettings:
    """Vagrant boxes, one VM per node."""

    network: ipaddress.IPv4Network
    box: str
    provider: str
    # libvirt's domain type: kvm, qemu (plain emulation) or auto (kvm where this host's CPU
    # offers hardware virtualisation, else qemu; see cluster/machines/vagrant.py).
    driver: VagrantDriver
    cpus: Mapping[str, int]  # role -> CPUs
    memory: Mapping[str, int]  # role -> MiB


# A host key to pin is `TYPE BASE64` as in a .pub file or `ssh-keyscan` (a trailing comment is
# dropped); TRUST_ON_FIRST_USE takes the key the host shows the first time and records it in the
# stack (cluster/machines/ssh.py), refusing any other key afterwards.
TRUST_ON_FIRST_USE = "trust-on-first-use"
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                  "ssh-rsa")
_HOST_KEY_RE = re.compile(r"^(" + "|".join(HOST_KEY_TYPES) + r") [A-Za-z0-9+/]+={0,2}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


@dataclass(frozen=True)
class SshLogin:
    """How the program logs in to one machine: `ssh -p PORT USER@ADDRESS`, with a key file (or
    the SSH agent when there is none) and the host key it must show."""

    address: str
    port: int
    user: str
    private_key_file: str  # "" = the SSH agent ($SSH_AUTH_SOCK)
    host_key: str  # "TYPE BASE64", or TRUST_ON_FIRST_USE

    @property
    def tofu(self) -> bool:
        return self.host_key == TRUST_ON_FIRST_USE


@dataclass(frozen=True)
class SshHost:
    """One existing machine: its address in the cluster, how to log in, through the bastion or not."""

    address: str
    login: SshLogin
    via_bastion: bool = False


@dataclass(frozen=True)
class SshSettings:
    """Existing machines reached over SSH, listed by role."""

    servers: tuple[SshHost, ...]
    load_balancers: tuple[SshHost, ...]
    clients: tuple[SshHost, ...]
    bastion: SshLogin | None = None

    @property
    def hosts(self) -> tuple[SshHost, ...]:
        """Every host in the order of topology.nodes: servers, load balancer, clients."""
        return (*self.servers, *self.load_balancers, *self.clients)


@dataclass(frozen=True)
class MachinesSpec:
    provider: MachineProvider
    nspawn: NspawnSettings | None = None
    vagrant: VagrantSettings | None = None
    ssh: SshSettings | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        settings = self.nspawn or self.vagrant
        assert settings is not None, "existing machines have no network of the program's: see machines.ssh"
        return settings.network


@dataclass(frozen=True)
class ClientSettings:
    """Nomad client settings that may differ from one client to another."""

    node_class: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


# The machines' architectures the binaries are pinned for; the first is the default.
ARCHITECTURES = ("amd64", "arm64")


@dataclass(frozen=True)
class ArchPin:
    """Another architecture's artefact of a BinaryPin's version."""

    sha256: str
    url: str = ""
    archive: str = "zip"


@dataclass(frozen=True)
class BinaryPin:
    """A product to install: its version and the sha256 it must have, for one architecture
    (`arch`), and what is pinned for the others (`arches`).

    With the `release` source the sha256 is that of the vendor's zip; with `upload`, that of
    the binary itself. An empty sha256 means "take the toolchain's" (upload only).
    """

    product: str
    version: str
    sha256: str = ""
    # The vendor's download: a URL template with {version}, and "zip" or "binary".
    url: str = ""
    archive: str = "zip"
    arch: str = "amd64"
    arches: Mapping[str, ArchPin] = field(default_factory=dict)

    @property
    def config_key(self) -> str:
        """The stack config key that pins this product."""
        return PRODUCT_KEYS[self.product]

    def for_arch(self, arch: str, source: InstallSource = "upload") -> BinaryPin:
        """The pin of ARCH's artefact; ConfigError naming the fix when none is pinned."""
        if arch == self.arch:
            return self
        other = self.arches.get(arch)
        if other is None or (source == "release" and not other.sha256):
            raise ConfigError(f"{self.config_key}.sha256",
                              f"a machine is {arch}, but no {arch} sha256 is pinned for {self.product} "
                              f"{self.version}",
                              f"pin the linux_{arch} value: "
                              + _fix_set_path(f"{self.config_key}.sha256.{arch}", "<sha256>"))
        return BinaryPin(self.product, self.version, other.sha256, other.url or self.url, other.archive, arch)


# Products the program installs, and the config key that pins each one.
PRODUCT_KEYS = {"consul": "consul", "nomad": "nomad", "consul-template": "consulTemplate",
                "cadvisor": "cadvisor"}


@dataclass(frozen=True)
class InstallSpec:
    """Where machines get the binaries from."""

    source: InstallSource
    mirror: str
    consul: BinaryPin
    nomad: BinaryPin
    consul_template: BinaryPin
    cadvisor: BinaryPin

    def pin(self, product: str) -> BinaryPin:
        return {"consul": self.consul, "nomad": self.nomad, "consul-template": self.consul_template,
                "cadvisor": self.cadvisor}[product]


@dataclass(frozen=True)
class PackagePin:
    """A Debian package the machines carry (in the lab base, in the box), at the version the
    stack expects: its install step refuses another version."""

    package: str
    version: str


# Debian 12's docker.io (with its containerd and runc): what the lab base and the box carry.
DOCKER_PACKAGE = PackagePin("docker.io", "20.10.24+dfsg1-1+deb12u1+b6")
# A Debian version: [epoch:]upstream[-revision] (Debian Policy 5.6.12).
_DEBIAN_VERSION_RE = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")

LoadBalancing = Literal["one-tier", "two-tier"]
LOAD_BALANCING: tuple[LoadBalancing, ...] = ("one-tier", "two-tier")
BACKEND_PORT = 8090  # the clients' backend balancers (two-tier)


@dataclass(frozen=True)
class SecuritySpec:
    """What protects the cluster; every part on unless the stack turns it off."""

    gossip: bool = True  # gossip encryption (Consul; Nomad servers)
    tls: bool = True  # TLS for Consul's and Nomad's RPC and HTTP, with the program's CA
    acl: bool = True  # Consul and Nomad ACLs: deny by default, a narrow token per user

    @property
    def any(self) -> bool:
        return self.gossip or self.tls or self.acl


SECURITY_KEYS = ("gossip", "tls", "acl")


@dataclass(frozen=True)
class ClusterSpec:
    """Everything the program needs to know, validated."""

    stack: str
    domain: str
    servers: int
    clients: int
    machines: MachinesSpec
    install: InstallSpec
    datacenter: str = "dc1"
    region: str = "global"
    client_settings: Mapping[str, ClientSettings] = field(default_factory=dict)
    default_client: ClientSettings = ClientSettings()
    jobs: tuple[str, ...] = ("fib",)
    security: SecuritySpec = SecuritySpec()
    # one-tier: the front balancer routes to every instance; two-tier: to a backend balancer on
    # each client that runs the service, which routes to the instances on its own node.
    load_balancing: LoadBalancing = "one-tier"
    docker: PackagePin = DOCKER_PACKAGE  # the container engine of every client
    # raw_exec (tasks as root, without isolation) on the clients: only when a listed job uses it.
    raw_exec: bool = False


# The keys this program reads. Anything else under the namespace is a typo and is refused.
KEYS = ("domain", "servers", "clients", "datacenter", "region", "machines", "install", "consul",
        "nomad", "consulTemplate", "cadvisor", "clientSettings", "jobs", "security", "loadBalancing",
        "docker")


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


def _parse_object(key: str, raw: str, example_path: str, example: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected an object (a YAML mapping), got {raw!r}",
                          _fix_set_path(f"{key}.{example_path}", example))
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
    obj = _parse_object(key, raw, "provider", "nspawn")
    provider = obj.get("provider")
    if provider not in MACHINE_PROVIDERS:
        raise ConfigError(f"{key}.provider",
                          f"{provider!r} is not a machine provider (one of: {', '.join(MACHINE_PROVIDERS)})",
                          _fix_set_path(f"{key}.provider", "nspawn"))
    if provider == "ssh":
        return MachinesSpec(provider="ssh", ssh=_ssh(obj))
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
    driver = obj.get("driver", "auto")
    if driver not in ("auto", "kvm", "qemu"):
        raise ConfigError(f"{key}.driver",
                          f"{driver!r} is not a libvirt driver "
                          "(auto, kvm, or qemu for plain emulation without KVM)",
                          _fix_set_path(f"{key}.driver", "auto"))
    return MachinesSpec(provider="vagrant", vagrant=VagrantSettings(
        network=network, box=box, provider=vprovider, driver=driver,
        cpus=_per_role(f"{key}.cpus", obj.get("cpus"), VAGRANT_CPUS, 1, 64),
        memory=_per_role(f"{key}.memory", obj.get("memory"), VAGRANT_MEMORY, 256, 262144),
    ))


SSH_HOST_KEYS = ("address", "hostKey", "sshAddress", "port", "user", "privateKeyFile", "viaBastion")
SSH_BASTION_KEYS = ("address", "hostKey", "port", "user", "privateKeyFile")
SSH_ROLES = ("servers", "loadBalancers", "clients")


def _ssh_string(key: str, value: Any, pattern: re.Pattern[str], what: str, example: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(key, f"{value!r} is not {what}", _fix_set_path(key, example))
    return value


def _ssh_address(key: str, value: Any) -> str:
    """An IPv4 address (a cluster address must be one: it goes into the agents' files)."""
    try:
        return str(ipaddress.IPv4Address(str(value))) if isinstance(value, str) else ""
    except ValueError:
        pass
    raise ConfigError(key, f"{value!r} is not an IPv4 address", _fix_set_path(key, "192.0.2.10"))


def _host_key(key: str, value: Any) -> str:
    """A host key as a .pub file has it (its comment dropped), or TRUST_ON_FIRST_USE."""
    if value == TRUST_ON_FIRST_USE:
        return TRUST_ON_FIRST_USE
    text = " ".join(value.split()[:2]) if isinstance(value, str) else value
    if not isinstance(text, str) or not _HOST_KEY_RE.match(text):
        raise ConfigError(key, f"{value!r} is not a host public key (TYPE BASE64, as in the host's "
                          f"/etc/ssh/ssh_host_ed25519_key.pub) nor {TRUST_ON_FIRST_USE!r}",
                          f"pin the key `ssh-keyscan -t ed25519 HOST` prints: "
                          f"{_fix_set_path(key, repr('ssh-ed25519 AAAA...'))}")
    return text


def _ssh_login(key: str, obj: Mapping[str, Any], address: str) -> SshLogin:
    if "hostKey" not in obj:
        raise ConfigError(f"{key}.hostKey", "not set: every host's SSH key is pinned (or trusted on "
                          "first use, recorded in the stack)",
                          _fix_set_path(f"{key}.hostKey", f"'{TRUST_ON_FIRST_USE}'"))
    key_file = obj.get("privateKeyFile", "")
    if not isinstance(key_file, str) or (key_file and not key_file.startswith(("/", "~"))):
        raise ConfigError(f"{key}.privateKeyFile", f"{key_file!r} is not an absolute path "
                          "(leave it out to use the SSH agent)",
                          _fix_set_path(f"{key}.privateKeyFile", "~/.ssh/id_ed25519"))
    return SshLogin(
        address=address,
        port=_object_int(f"{key}.port", obj.get("port"), 22, 1, 65535),
        user=_ssh_string(f"{key}.user", obj.get("user", "root"), _USER_RE, "a user name", "deploy"),
        private_key_file=key_file,
        host_key=_host_key(f"{key}.hostKey", obj["hostKey"]))


def _ssh_host(key: str, obj: Any) -> SshHost:
    if not isinstance(obj, dict):
        raise ConfigError(key, f"expected a host (an object with address and hostKey), got {obj!r}",
                          _fix_set_path(f"{key}.address", "192.0.2.10"))
    _check_keys(key, obj, SSH_HOST_KEYS)
    address = _ssh_address(f"{key}.address", obj.get("address"))
    ssh_address = obj.get("sshAddress", address)
    if ssh_address != address:
        ssh_address = _ssh_string(f"{key}.sshAddress", ssh_address, _HOSTNAME_RE,
                                  "a host name or address", "203.0.113.10")
    via = obj.get("viaBastion", False)
    via = {"true": True, "false": False}.get(via, via) if isinstance(via, str) else via
    if not isinstance(via, bool):
        raise ConfigError(f"{key}.viaBastion", f"expected true or false, got {via!r}",
                          _fix_set_path(f"{key}.viaBastion", "true"))
    return SshHost(address=address, login=_ssh_login(key, obj, ssh_address), via_bastion=via)


def _ssh(obj: Mapping[str, Any]) -> SshSettings:
    """`machines: {provider: ssh, servers: [...], loadBalancers: [...], clients: [...], bastion}`."""
    key = "machines"
    _check_keys(key, obj, ("provider", *SSH_ROLES, "bastion"))
    lists: dict[str, tuple[SshHost, ...]] = {}
    for role in SSH_ROLES:
        value = obj.get(role)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}.{role}", f"expected a list of hosts, got {value!r}",
                              _fix_set_path(f"{key}.{role}[0].address", "192.0.2.10"))
        lists[role] = tuple(_ssh_host(f"{key}.{role}[{i}]", h) for i, h in enumerate(value))
    if len(lists["loadBalancers"]) != 1:
        raise ConfigError(f"{key}.loadBalancers", f"the cluster has one front load balancer, "
                          f"{len(lists['loadBalancers'])} are listed", "list exactly one")
    bastion = None
    if "bastion" in obj:
        raw = obj["bastion"]
        if not isinstance(raw, dict):
            raise ConfigError(f"{key}.bastion", f"expected a host, got {raw!r}",
                              _fix_set_path(f"{key}.bastion.address", "203.0.113.10"))
        _check_keys(f"{key}.bastion", raw, SSH_BASTION_KEYS)
        address = _ssh_string(f"{key}.bastion.address", raw.get("address"), _HOSTNAME_RE,
                              "a host name or address", "203.0.113.10")
        bastion = _ssh_login(f"{key}.bastion", raw, address)
        if bastion.tofu:
            raise ConfigError(f"{key}.bastion.hostKey", "a bastion's key is pinned, never trusted on "
                              "first use: every host behind it is reached through it",
                              f"pin the key `ssh-keyscan -t ed25519 {address}` prints")
    seen: dict[str, str] = {}
    for role in SSH_ROLES:
        for i, host in enumerate(lists[role]):
            where = f"{key}.{role}[{i}]"
            if host.address in seen:
                raise ConfigError(f"{where}.address", f"{host.address} is listed twice "
                                  f"(also as {seen[host.address]})", "give each machine its own address")
            seen[host.address] = where
            if host.via_bastion and bastion is None:
                raise ConfigError(f"{where}.viaBastion", "no bastion is configured",
                                  _fix_set_path(f"{key}.bastion.address", "203.0.113.10"))
    return SshSettings(servers=lists["servers"], load_balancers=lists["loadBalancers"],
                       clients=lists["clients"], bastion=bastion)


def _ssh_counts(raw: Mapping[str, str], ssh: SshSettings) -> tuple[int, int]:
    """The servers and clients of a stack of existing machines: as many as are listed (the
    `servers` and `clients` settings, when set, must agree)."""
    counts = {"servers": len(ssh.servers), "clients": len(ssh.clients)}
    for name, listed in counts.items():
        if name in raw and _parse_int(name, raw[name], 1, 10**6, str(listed)) != listed:
            raise ConfigError(name, f"{raw[name]} does not match the {listed} hosts listed in "
                              f"machines.{name}", f"pulumi config rm {NAMESPACE}:{name} (the list decides)")
    return counts["servers"], counts["clients"]


def _per_role(key: str, value: Any, defaults: Mapping[str, int], low: int, high: int) -> dict[str, int]:
    """One number for every role, or {role: number} for some roles (the rest keep defaults)."""
    if value is None:
        return dict(defaults)
    if not isinstance(value, dict):
        number = _object_int(key, value, defaults["server"], low, high)
        return {role: number for role in defaults}
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"{unknown[0]!r} is not a machine role "
                          f"(one of: {', '.join(defaults)})", f"remove it from {NAMESPACE}:{key}")
    return {role: _object_int(f"{key}.{role}", value.get(role), default, low, high)
            for role, default in defaults.items()}


# `defaults(source)`: the pins to use where the config pins none, keyed by product (the
# default versions) and by "product@version" (other versions the toolchain provides, e.g.
# "nomad@1.6.2", whose sha256 is used when a stack pins only that version).
PinDefaults = Callable[[InstallSource], Mapping[str, BinaryPin]]


def load(raw: Mapping[str, str], stack: str, defaults: PinDefaults | None = None) -> ClusterSpec:
    """Validate the raw config of one stack (keys without the namespace, values as strings).

    `defaults(source)` gives the versions and sha256s to use where the config pins none
    (see cluster/binaries.py: toolchain/versions.toml and the toolchain's own binaries).
    """
    for name in raw:
        if name not in KEYS:
            raise ConfigError(name, f"unknown setting (known: {', '.join(KEYS)})",
                              f"pulumi config rm {NAMESPACE}:{name}")
    domain = _parse_name("domain", raw.get("domain", "demo"), _DOMAIN_RE,
                         "a lowercase DNS domain", "demo")
    datacenter = _parse_name("datacenter", raw.get("datacenter", "dc1"),
                             re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$"), "a datacenter name", "dc1")
    servers = _parse_int("servers", raw.get("servers", "1"), 1, MAX_SERVERS, "1")
    clients = _parse_int("clients", raw.get("clients", "3"), 1, MAX_CLIENTS, "3")
    machines = _machines(raw.get("machines"), CLIENT_OFFSET + clients)
    if machines.ssh is not None:
        servers, clients = _ssh_counts(raw, machines.ssh)
    if servers % 2 == 0:
        raise ConfigError("servers", f"{servers} servers cannot keep a quorum through a failure "
                          "better than one fewer; use an odd number", _fix_set("servers", "3"))
    region = _parse_name("region", raw.get("region", "global"),
                         re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$"), "a region name", "global")
    jobs = _jobs(raw.get("jobs"))
    return ClusterSpec(stack=stack, domain=domain, servers=servers, clients=clients,
                       machines=machines, datacenter=datacenter, region=region,
                       install=_install(raw, defaults or (lambda source: {})),
                       client_settings=_client_settings(raw.get("clientSettings"), clients),
                       jobs=jobs, raw_exec=_raw_exec(jobs), security=_security(raw.get("security")),
                       load_balancing=_load_balancing(raw.get("loadBalancing")),
                       docker=_docker(raw.get("docker")))


def _docker(raw: str | None) -> PackagePin:
    """`docker: {version: V}`: the docker.io version the clients must have."""
    if raw is None:
        return DOCKER_PACKAGE
    obj = _parse_object("docker", raw, "version", DOCKER_PACKAGE.version)
    _check_keys("docker", obj, ("version",))
    version = obj.get("version", DOCKER_PACKAGE.version)
    if not isinstance(version, str) or not _DEBIAN_VERSION_RE.match(version):
        raise ConfigError("docker.version", f"{version!r} is not a Debian package version "
                          "(what `dpkg-query -W docker.io` prints on a client)",
                          _fix_set_path("docker.version", DOCKER_PACKAGE.version))
    return PackagePin(DOCKER_PACKAGE.package, version)


def _load_balancing(raw: str | None) -> LoadBalancing:
    value = raw if raw is not None else "one-tier"
    for choice in LOAD_BALANCING:
        if value == choice:
            return choice
    raise ConfigError("loadBalancing", f"{value!r} is not one of {', '.join(LOAD_BALANCING)}",
                      _fix_set("loadBalancing", "two-tier"))


def _security(raw: str | None) -> SecuritySpec:
    """`security: {gossip: false}` turns a part off (the plain demo); all on by default."""
    if raw is None:
        return SecuritySpec()
    obj = _parse_object("security", raw, "gossip", "true")
    _check_keys("security", obj, SECURITY_KEYS)
    values = {}
    for name, value in obj.items():
        # `pulumi config set --path` stores a string unless told `--type bool`.
        value = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
        if not isinstance(value, bool):
            raise ConfigError(f"security.{name}", f"expected true or false, got {value!r}",
                              _fix_set_path(f"security.{name}", "false"))
        values[name] = value
    return SecuritySpec(**values)


JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


def _jobs(raw: str | None) -> tuple[str, ...]:
    """Job names: each is jobs/<name>.nomad.hcl."""
    if raw is None:
        return ("fib",)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("jobs", f"expected a list of job names, got {raw!r}",
                          "pulumi config set --path 'hashicluster:jobs[0]' fib")
    for name in value:
        if not re.match(r"^[a-z0-9][a-z0-9-]*$", name) or not (JOBS_DIR / f"{name}.nomad.hcl").is_file():
            known = sorted(p.name.removesuffix(".nomad.hcl") for p in JOBS_DIR.glob("*.nomad.hcl"))
            raise ConfigError("jobs", f"{name!r} is not a job in jobs/ (known: {', '.join(known)})",
                              "name a file jobs/<name>.nomad.hcl")
    return tuple(value)


def _raw_exec(jobs: tuple[str, ...]) -> bool:
    """Whether a job of JOBS runs a task with raw_exec (then the clients enable it)."""
    drivers: set[str] = set()
    for name in jobs:
        path = JOBS_DIR / f"{name}.nomad.hcl"
        try:
            drivers |= task_drivers(path.read_text())
        except JobFileError as e:
            raise ConfigError("jobs", f"jobs/{path.name}: {e}",
                              f"fix jobs/{path.name} (check it with: nomad job validate)") from e
    return "raw_exec" in drivers


_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_URL_RE = re.compile(r"^(https?|file)://[^\s]+$")
_META_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")


def _pin(raw: Mapping[str, str], product: str, known: Mapping[str, BinaryPin],
         source: InstallSource) -> BinaryPin:
    key = PRODUCT_KEYS[product]
    default = known.get(product)
    obj = _parse_object(key, raw[key], "version", "1.2.3") if key in raw else {}
    _check_keys(key, obj, ("version", "sha256"))
    version = obj.get("version", default.version if default else None)
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ConfigError(f"{key}.version", f"{version!r} is not a version such as 1.2.3",
                          _fix_set_path(f"{key}.version", default.version if default else "1.2.3"))
    # What is known of the pinned version: the default, or another version the toolchain has.
    same = (default if default is not None and default.version == version
            else known.get(f"{product}@{version}"))
    base = same or default
    # `sha256: VALUE` pins amd64's; `sha256: {amd64: .., arm64: ..}` any architecture's.
    given = obj.get("sha256")
    given = given if isinstance(given, dict) else ({ARCHITECTURES[0]: given} if given is not None else {})
    for arch in given:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"{key}.sha256.{arch}", f"{arch!r} is not an architecture the binaries are "
                              f"pinned for ({', '.join(ARCHITECTURES)})", f"remove it from {NAMESPACE}:{key}")
    shas = {arch: given.get(arch, _known_sha(same, arch)) for arch in ARCHITECTURES}
    for arch, sha in shas.items():
        if not isinstance(sha, str) or (sha and not _SHA256_RE.match(sha)):
            where = f"{key}.sha256" + ("" if arch == ARCHITECTURES[0] else f".{arch}")
            raise ConfigError(where, f"{sha!r} is not a sha256 (64 lowercase hex digits)",
                              _fix_set_path(where, "<sha256 of the artefact>"))
    sha = shas[ARCHITECTURES[0]]
    if source == "release" and not sha:
        sums = (f"{DEFAULT_MIRROR}/{product}/{version}/{product}_{version}_SHA256SUMS"
                if product != "cadvisor" else "the release notes")
        raise ConfigError(f"{key}.sha256",
                          f"no sha256 is pinned for the {product} {version} release",
                          f"pin the linux_amd64 value of {sums}: "
                          + _fix_set_path(f"{key}.sha256", "<sha256>"))
    url, archive = (base.url, base.archive) if base else ("", "zip")
    # Another architecture's artefact: the toolchain's, or the vendors' URL with its name.
    arches = {arch: ArchPin(str(shas[arch]),
                            *(_known_artefact(base, arch) or (url.replace(ARCHITECTURES[0], arch), archive)))
              for arch in ARCHITECTURES[1:] if shas[arch] or _known_artefact(base, arch)}
    return BinaryPin(product, version, sha, url, archive, ARCHITECTURES[0], arches)


def _known_sha(pin: BinaryPin | None, arch: str) -> str:
    if pin is None:
        return ""
    if arch == pin.arch:
        return pin.sha256
    other = pin.arches.get(arch)
    return other.sha256 if other else ""


def _known_artefact(pin: BinaryPin | None, arch: str) -> tuple[str, str] | None:
    other = pin.arches.get(arch) if pin else None
    return (other.url, other.archive) if other else None


def _install(raw: Mapping[str, str], defaults: PinDefaults) -> InstallSpec:
    obj = _parse_object("install", raw["install"], "source", "release") if "install" in raw else {}
    _check_keys("install", obj, ("source", "mirror"))
    source = obj.get("source", "release")
    if source not in INSTALL_SOURCES:
        raise ConfigError("install.source",
                          f"{source!r} is not an install source (release: machines download from "
                          "the mirror; upload: the controller copies its own binaries)",
                          _fix_set_path("install.source", "release"))
    mirror = obj.get("mirror", DEFAULT_MIRROR)
    if not isinstance(mirror, str) or not _URL_RE.match(mirror):
        raise ConfigError("install.mirror", f"{mirror!r} is not an http(s) URL",
                          _fix_set_path("install.mirror", DEFAULT_MIRROR))
    known = defaults(source)
    pins = {p: _pin(raw, p, known, source) for p in PRODUCT_KEYS}
    return InstallSpec(source=source, mirror=mirror.rstrip("/"), consul=pins["consul"],
                       nomad=pins["nomad"], consul_template=pins["consul-template"],
                       cadvisor=pins["cadvisor"])


def _client_settings(raw: str | None, clients: int) -> dict[str, ClientSettings]:
    if raw is None:
        return {}
    key = "clientSettings"
    obj = _parse_object(key, raw, "client1.nodeClass", "batch")
    known = tuple(f"client{i}" for i in range(1, clients + 1))
    result = {}
    for name, settings in obj.items():
        if name not in known:
            raise ConfigError(f"{key}.{name}", f"there is no client named {name!r} "
                              f"(this stack has {', '.join(known)})",
                              f"remove it, or raise {NAMESPACE}:clients")
        if not isinstance(settings, dict):
            raise ConfigError(f"{key}.{name}", "expected an object with nodeClass and/or meta",
                              _fix_set_path(f"{key}.{name}.nodeClass", "batch"))
        _check_keys(f"{key}.{name}", settings, ("nodeClass", "meta"))
        node_class = settings.get("nodeClass", "")
        if not isinstance(node_class, str) or not re.match(r"^[A-Za-z0-9._-]{0,63}$", node_class):
            raise ConfigError(f"{key}.{name}.nodeClass", f"{node_class!r} is not a node class name",
                              _fix_set_path(f"{key}.{name}.nodeClass", "batch"))
        meta = settings.get("meta", {})
        if not isinstance(meta, dict) or not all(
                isinstance(v, str) and _META_KEY_RE.match(k) and '"' not in v and "\\" not in v
                for k, v in meta.items()):
            raise ConfigError(f"{key}.{name}.meta", "expected string values under simple keys "
                              "(letters, digits, _ . -), without quotes or backslashes",
                              _fix_set_path(f"{key}.{name}.meta.rack", "r1"))
        result[name] = ClientSettings(node_class=node_class, meta=dict(meta))
    return result
