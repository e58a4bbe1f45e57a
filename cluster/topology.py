"""Pure topology: which nodes exist, their roles, hostnames and addresses.

No Pulumi imports. Everything here is derived from a ClusterSpec, so the same config
always yields the same nodes in the same order.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from cluster.config import CLIENT_OFFSET, LB_OFFSET, SERVER_OFFSET, ClusterSpec


class Role(enum.Enum):
    SERVER = "server"  # Consul server + Nomad server
    LB = "lb"  # the front load balancer (a Consul client)
    CLIENT = "client"  # Consul client + Nomad client


@dataclass(frozen=True)
class Node:
    """One machine of the cluster."""

    name: str  # resource and machine name: root-server, frontend-lb, client1
    role: Role
    index: int  # 1-based within its role
    hostname: str  # fully qualified: root.server.demo, frontend.lb.demo, client1.demo
    address: str

    @property
    def short_hostname(self) -> str:
        return self.hostname.split(".", 1)[0]


def _lb_hostname(domain: str) -> str:
    return f"frontend.lb.{domain}"


def _host(network: ipaddress.IPv4Network, offset: int) -> str:
    return str(network.network_address + offset)


def _addresses(spec: ClusterSpec) -> list[str]:
    """Every node's address in the order of nodes(): the listed ones for existing machines,
    else fixed offsets in the machines' network."""
    if spec.machines.ssh is not None:
        return [host.address for host in spec.machines.ssh.hosts]
    net = spec.machines.network
    return [*(_host(net, SERVER_OFFSET + i) for i in range(spec.servers)), _host(net, LB_OFFSET),
            *(_host(net, CLIENT_OFFSET + i) for i in range(1, spec.clients + 1))]


def nodes(spec: ClusterSpec) -> list[Node]:
    """All nodes in a stable order: servers, load balancer, clients."""
    domain = spec.domain
    addresses = iter(_addresses(spec))
    result: list[Node] = []
    for i in range(1, spec.servers + 1):
        if i == 1:
            name, hostname = "root-server", f"root.server.{domain}"
        else:
            name, hostname = f"server{i}", f"server{i}.server.{domain}"
        result.append(Node(name, Role.SERVER, i, hostname, next(addresses)))
    result.append(Node("frontend-lb", Role.LB, 1, _lb_hostname(domain), next(addresses)))
    for i in range(1, spec.clients + 1):
        result.append(Node(f"client{i}", Role.CLIENT, i, f"client{i}.{domain}", next(addresses)))
    return result


REGISTRY_PORT = 5000


def registry(spec: ClusterSpec) -> str:
    """The cluster's image registry, as Docker names it: the load balancer's host name and port."""
    return f"{_lb_hostname(spec.domain)}:{REGISTRY_PORT}"


def hosts_lines(all_nodes: list[Node]) -> list[str]:
    """/etc/hosts lines naming every node: `ADDRESS FQDN SHORT`."""
    return [f"{n.address} {n.hostname} {n.short_hostname}" for n in all_nodes]
