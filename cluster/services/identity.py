"""The first step on every machine: its hostname and an /etc/hosts block naming every node.

Idempotent: the script compares before it writes, so running it again changes nothing.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from cluster.machines import Machine
from cluster.render import render_script
from cluster.topology import Node, hosts_lines

BEGIN = "# BEGIN hashicluster"
END = "# END hashicluster"


def identity_script(node: Node, all_nodes: list[Node]) -> str:
    """The script (templates/steps/identity.sh.j2) that sets the hostname and the managed
    /etc/hosts block."""
    return render_script("identity.sh.j2", hostname=node.hostname, begin=BEGIN, end=END,
                         hosts=hosts_lines(all_nodes), names=[n.hostname for n in all_nodes])


def identity(machine: Machine, all_nodes: list[Node]) -> remote.Command:
    node = machine.node
    return remote.Command(
        f"{node.name}-identity",
        connection=machine.connection,
        create=identity_script(node, all_nodes),
        # After the machine's power: its settings are applied (or a reboot asked for) first.
        opts=pulumi.ResourceOptions(parent=machine.resource,
                                    depends_on=[machine.power] if machine.power else []),
    )
