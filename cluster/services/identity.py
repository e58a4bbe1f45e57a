"""The first step on every machine: its hostname and an /etc/hosts block naming every node.

Idempotent: the script compares before it writes, so running it again changes nothing.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from cluster.install import STATE, UPLOADS
from cluster.machines import Machine
from cluster.render import render_script
from cluster.topology import Node, hosts_lines

BEGIN = "# BEGIN hashicluster"
END = "# END hashicluster"


def identity_script(node: Node, all_nodes: list[Node], user: str = "root") -> str:
    """The script (templates/steps/identity.sh.j2) that sets the hostname and the managed
    /etc/hosts block, and makes the uploads' directory for the login USER."""
    return render_script("identity.sh.j2", hostname=node.hostname, begin=BEGIN, end=END,
                         hosts=hosts_lines(all_nodes), names=[n.hostname for n in all_nodes],
                         user=user, uploads=UPLOADS)


def unidentity_script(node: Node) -> str:
    """The removal (templates/steps/unidentity.sh.j2): the machine's hostname and /etc/hosts
    as they were, and no state of the program's left."""
    return render_script("unidentity.sh.j2", hostname=node.hostname, begin=BEGIN, end=END, state=STATE)


def identity(machine: Machine, all_nodes: list[Node]) -> remote.Command:
    node = machine.node
    return remote.Command(
        f"{node.name}-identity",
        connection=machine.connection,
        create=machine.as_root(identity_script(node, all_nodes, machine.user)),
        # Last to go: every other step on the machine comes after it.
        delete=machine.as_root(unidentity_script(node)),
        # After the machine's power: its settings are applied (or a reboot asked for) first.
        opts=pulumi.ResourceOptions(parent=machine.resource, deleted_with=machine.deleted_with,
                                    depends_on=[machine.power] if machine.power else []),
    )
