"""The first step on every machine: its hostname and an /etc/hosts block naming every node.

Idempotent: the script compares before it writes, so running it again changes nothing.
"""

from __future__ import annotations

import shlex

import pulumi
from pulumi_command import remote

from cluster.machines import Machine
from cluster.topology import Node, hosts_lines

BEGIN = "# BEGIN hashicluster"
END = "# END hashicluster"


def identity_script(node: Node, all_nodes: list[Node]) -> str:
    """A POSIX shell script that sets the hostname and the managed /etc/hosts block."""
    block = [BEGIN, *hosts_lines(all_nodes), END]
    q = shlex.quote
    return "\n".join([
        "set -eu",
        f"want={q(node.hostname)}",
        'if [ "$(cat /etc/hostname 2>/dev/null || true)" != "$want" ]; then echo "$want" > /etc/hostname; fi',
        'if [ "$(hostname)" != "$want" ]; then hostname "$want"; fi',
        "tmp=$(mktemp)",
        f"sed '/^{BEGIN}$/,/^{END}$/d' /etc/hosts > \"$tmp\"",
        "printf '%s\\n' " + " ".join(q(line) for line in block) + ' >> "$tmp"',
        'if cmp -s "$tmp" /etc/hosts; then rm -f "$tmp"; else cat "$tmp" > /etc/hosts; rm -f "$tmp"; fi',
        # Done means working: every node's name resolves here.
        *[f"getent hosts {q(n.hostname)} >/dev/null" for n in all_nodes],
    ]) + "\n"


def identity(machine: Machine, all_nodes: list[Node]) -> remote.Command:
    node = machine.node
    return remote.Command(
        f"{node.name}-identity",
        connection=machine.connection,
        create=identity_script(node, all_nodes),
        opts=pulumi.ResourceOptions(parent=machine.resource),
    )
