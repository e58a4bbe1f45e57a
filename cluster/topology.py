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


def nodes(spec: ClusterSpec) -> list[Node]:
    """All nodes in a stable order: servers, load balancer, clients."""
    net = spec.machines.network
    domain = spec.domain
    result: list[Node] = []
    for i in range(1, spec.servers + 1):
        if i == 1:
            name, hostname = "root-server", f"root.server.{domain}"
        else:
            name, hostname = f"server{i}", f"server{i}.server.{domain}"
        result.append(Node(name, Role.SERVER, i, hostname, _host(net, SERVER_OFFSET + i - 1)))
    result.append(Node("frontend-lb", Role.LB, 1, _lb_hostname(domain), _host(net, LB_OFFSET)))
    for i in range(1, spec.clients + 1):
        result.append(Node(f"client{i}", Role.CLIENT, i, f"client{i}.{domain}",
                           _host(net, CLIENT_OFFSET + i)))
    return result


REGISTRY_PORT = 5000


def registry(spec: ClusterSpec) -> str:
    """The cluster's image registry, as Docker names it: the load balancer's host name and port."""
    return f"{_lb_hostname(spec.domain)}:{REGISTRY_PORT}"


def hosts_lines(all_nodes: list[Node]) -> list[str]:
    """/etc/hosts lines naming every node: `ADDRESS FQDN SHORT`."""
    return [f"{n.address} {n.hostname} {n.short_hostname}" for n in all_nodes]
