"""Pure: the scripts that install and start an agent, roll its restarts and gate the tiers,
rendered from templates/steps/ (the shell lives there; this module chooses the values).

Every script checks before it acts (a second run changes nothing), refuses a binary whose
sha256 is not the pinned one before touching the installed copy, and restarts the
service only when something it installed changed.

Consul and Nomad are not restarted by the step that changes them on a running cluster: it
stages the change (new binary and files in place, the running agent untouched) and marks
the agent for a restart in PENDING; the machine's roll step (`roll_script`) restarts it when
its turn comes, one machine at a time, and waits until it is healthy again.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from cluster.config import DEFAULT_MIRROR, BinaryPin, InstallSpec, PackagePin
from cluster.render import DNS_UPSTREAM, RESOLVED_DROPIN, File, render_script
from cluster.topology import Node, Role

STATE = "/var/lib/hashicluster"  # everything the program keeps on a machine (lib.sh: HC_STATE)
STAGING = f"{STATE}/staging"
# Where the controller's binaries arrive (`upload` source): owned by the login user, who may not
# be root (the identity step makes it).
UPLOADS = "/var/lib/hashicluster/uploads"
MANIFESTS = "/var/lib/hashicluster/manifest"  # per product: what its install step put in place
PENDING = "/var/lib/hashicluster/restart"  # one file per agent awaiting its roll
# Debian's mark that a machine must reboot for a change to apply (a kernel update; a lab
# machine given what containers need): a client's roll turn reboots it, drained first.
REBOOT_REQUIRED = "/run/reboot-required"
DRAINED_FOR_REBOOT = "/var/lib/hashicluster/drained-for-reboot"  # the roll drained it to reboot
HEREDOC = "HASHICLUSTER_EOF"  # ends each file's text in an install script
DRAIN_DEADLINE = "2m"  # then Nomad stops what is still running on a node being removed
ROLL_TIMEOUT = 180  # seconds a rolled agent has to be healthy again
GATE_TIMEOUT = 180  # seconds a tier has to work


def staged_path(pin: BinaryPin) -> str:
    """Where an uploaded binary (gzip-packed: cluster/binaries.py) waits on the machine until it
    is unpacked, verified and installed."""
    return f"{UPLOADS}/{pin.product}-{pin.version}.gz"


def manifest_path(product: str) -> str:
    """The sha256sum lines of what PRODUCT's install step put in place (read by the drift probe)."""
    return f"{MANIFESTS}/{product}.sha256"


def binary_record(pin: BinaryPin) -> str:
    """Where the install step records the sha256 of a binary it unpacked from the vendor's zip
    (the pin is the zip's), for the drift probe and its own next run."""
    return f"{STAGING}/{pin.product}.installed-binary-sha256"


def release_url(install: InstallSpec, pin: BinaryPin) -> str:
    """The vendor's download. HashiCorp products come from the configured mirror, which has
    the vendor's layout: MIRROR/PRODUCT/VERSION/PRODUCT_VERSION_linux_amd64.zip."""
    url = pin.url.format(version=pin.version)
    if url.startswith(DEFAULT_MIRROR + "/"):
        url = install.mirror + url[len(DEFAULT_MIRROR):]
    return url


def nomad_url(address: str) -> str:
    """Nomad's API at ADDRESS, as the machines' scripts write it ($NOMAD_SCHEME: api.env)."""
    return f"$NOMAD_SCHEME://{address}:4646"


@dataclass(frozen=True)
class Agent:
    """One service to install on one node: consul, nomad, consul-template, cadvisor, nginx,
    docker.
    templates/steps/install-PRODUCT.sh.j2 says when it works."""

    product: str  # also the systemd unit's name
    pin: BinaryPin | None  # the binary to put in /usr/local/bin (None: from packages)
    files: list[File]
    user: str  # the service user ("root" for Nomad clients)
    data_dir: str | None
    address: str = ""  # the node's address (where its APIs answer)
    server: bool = False  # a Consul or Nomad server
    health: str = ""  # nginx, the registry: the URL that answers once it works
    health_ca: str = ""  # the CA file that verifies HEALTH (https)
    timeout: int = 120
    packages: tuple[str, ...] = ()  # Debian packages it needs
    package_pins: tuple[PackagePin, ...] = ()  # of those, the ones whose version is pinned
    # Cannot start until a reboot the machine asks for (REBOOT_REQUIRED): it is installed and
    # enabled, and the reboot starts it (Docker on a lab machine just given its capabilities).
    starts_at_reboot: bool = False
    secrets: tuple[str, ...] = ()  # files that come on stdin (see secrets_bundle), never in the text
    retired: tuple[str, ...] = ()  # secret files it may have had and must not have now
    # Files the service itself writes while it runs (consul-template's renders, Docker's key):
    # kept (a copy of what the machine had) and given back at removal like the step's own files.
    runtime: tuple[str, ...] = ()
    # Directories the service fills while it runs (Docker's images): removed at its removal if
    # the step found none there; left alone otherwise.
    data: tuple[str, ...] = ()
    # Image names (a registry's `HOST:PORT/` prefix, or `REPOSITORY:`) the cluster puts into this
    # machine's Docker: removed with it.
    images: tuple[str, ...] = ()


def secrets_bundle(files: Sequence[File]) -> str:
    """The stdin of an install step: one line per secret file, `PATH MODE OWNER BASE64`."""
    return "".join(f"{f.path} {f.mode} {f.owner} {base64.b64encode(f.content.encode()).decode()}\n"
                   for f in files)


def install_script(agent: Agent, install: InstallSpec, restart: bool = True) -> str:
    """Install (or converge) one agent: binary, user, data dir, config, unit, running service.

    With `restart=False` a change does not restart a running agent: it is staged and marked
    pending for the roll step. A stopped agent is started either way.
    """
    for f in agent.files:
        if HEREDOC in f.content.splitlines():
            raise ValueError(f"{f.path}: a line of its content is {HEREDOC}, the end of its here-document")
    pin = agent.pin
    return render_script(
        f"install-{agent.product}.sh.j2",
        product=agent.product, pin=pin, source=install.source, restart=restart,
        what=f"{pin.product} {pin.version}" if pin else agent.product,
        target=f"/usr/local/bin/{agent.product}", staged=staged_path(pin) if pin else "",
        url=release_url(install, pin) if pin else "",
        zip_marker=f"{STAGING}/{pin.product}.installed-zip-sha256" if pin else "",
        binary_record=binary_record(pin) if pin else "",
        manifests=MANIFESTS, manifest=manifest_path(agent.product),
        manifest_paths=[*([f"/usr/local/bin/{agent.product}"] if pin else []),
                        *(f.path for f in agent.files), *agent.secrets],
        staging=STAGING, pending=PENDING, heredoc=HEREDOC,
        starts_at_reboot=agent.starts_at_reboot, reboot_required=REBOOT_REQUIRED, upstream=DNS_UPSTREAM,
        resolved_dropin=RESOLVED_DROPIN,
        user=agent.user, data_dir=agent.data_dir, packages=agent.packages,
        package_pins=agent.package_pins, files=agent.files,
        secrets=agent.secrets, retired=agent.retired, runtime=agent.runtime, data=agent.data,
        timeout=agent.timeout,
        address=agent.address, server=agent.server, health=agent.health, health_ca=agent.health_ca,
        nomad_url=nomad_url(agent.address))


# Products whose removal does something of its own: Consul and Nomad leave the cluster (a leave,
# a drain), dnsmasq gives the machine its resolvers back, Docker drops the cluster's images.
_OWN_REMOVAL = ("consul", "nomad", "dnsmasq", "docker")


def uninstall_script(agent: Agent, servers: Sequence[Node] = ()) -> str:
    """Stop the agent and remove what install_script put in place (data included), after it
    has left the cluster: a Consul agent leaves; a Nomad client is drained and purged from the
    node list of SERVERS."""
    template = f"uninstall-{agent.product}.sh.j2" if agent.product in _OWN_REMOVAL else "uninstall.sh.j2"
    # What only the program makes: its binaries' products' own directories and unit (a packaged
    # product's /etc/PRODUCT.d is Debian's). Removed even where an older install kept no record.
    owned = ([f"/etc/{agent.product}.d", f"/opt/{agent.product}", f"/usr/local/bin/{agent.product}",
              f"/etc/systemd/system/{agent.product}.service"] if agent.pin else [])
    return render_script(template, product=agent.product, server=agent.server, staging=STAGING,
                         uploads=UPLOADS, owned=owned, images=agent.images,
                         manifest=manifest_path(agent.product),
                         pending=PENDING, nomad_url=nomad_url(agent.address),
                         server_urls=[nomad_url(s.address) for s in servers],
                         drain_deadline=DRAIN_DEADLINE, upstream=DNS_UPSTREAM,
                         resolved_dropin=RESOLVED_DROPIN)


def roll_script(node: Node, server_count: int, defer_leader: bool = False,
                timeout: int = ROLL_TIMEOUT) -> str:
    """NODE's turn in the rolling restart: restart its agents whose change is pending, one
    after the other, each waiting until healthy before the next; nothing pending, nothing
    restarted. With DEFER_LEADER (servers), an agent whose machine leads its servers stays
    pending: the second, leader-last pass restarts it."""
    server = node.role is Role.SERVER
    url = nomad_url(node.address)
    return render_script(
        "roll.sh.j2", machine=node.name, server=server, server_count=server_count,
        address=node.address, nomad_url=url, defer_leader=defer_leader and server,
        products=["consul", "nomad"] if node.role is not Role.LB else ["consul"],
        product_urls={"consul": "$CONSUL_HTTP_ADDR", "nomad": url},
        raft_ports={"consul": 8300, "nomad": 4647}, pending=PENDING, timeout=timeout,
        reboots=node.role is Role.CLIENT, reboot_required=REBOOT_REQUIRED,
        drained=DRAINED_FOR_REBOOT, drain_deadline=DRAIN_DEADLINE)


def rejoin_script(node: Node, timeout: int = ROLL_TIMEOUT) -> str:
    """After a client's roll turn: if the turn rebooted it, wait until it works again and make
    it eligible for allocations."""
    return render_script("rejoin.sh.j2", machine=node.name, nomad_url=nomad_url(node.address),
                         drained=DRAINED_FOR_REBOOT, pending=PENDING, timeout=timeout)


def consul_servers_gate(server_count: int, timeout: int = GATE_TIMEOUT) -> str:
    """Run on the root server: Consul has a leader and every server is alive."""
    return render_script("gate-consul-servers.sh.j2", server_count=server_count, timeout=timeout)


def nomad_servers_gate(root: Node, server_count: int, timeout: int = GATE_TIMEOUT) -> str:
    """Run on the root server: Nomad has a leader and every server is a Raft peer."""
    return render_script("gate-nomad-servers.sh.j2", server_count=server_count,
                         nomad_url=nomad_url(root.address), timeout=timeout)


def cluster_gate(root: Node, server_count: int, client_agents: int, nomad_clients: int,
                 timeout: int = GATE_TIMEOUT) -> str:
    """Run on the root server: every Consul agent is alive and every Nomad client ready."""
    return render_script("gate-cluster.sh.j2", server_count=server_count, client_count=client_agents,
                         nomad_clients=nomad_clients, nomad_url=nomad_url(root.address), timeout=timeout)
