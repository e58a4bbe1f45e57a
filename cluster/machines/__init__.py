"""Machine providers. Each turns a Node into a machine that answers SSH, and nothing more.

Every provider yields a Machine: the node it stands for, the Pulumi resource that owns
the machine's life (the parent of every step run on it) and an SSH connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_command import remote

from cluster.topology import Node


@dataclass(frozen=True)
class Machine:
    node: Node
    resource: pulumi.ComponentResource
    connection: pulumi.Output[remote.ConnectionArgs]
    ssh: str  # the command a person types to log in
    power: pulumi.Resource | None = None  # whether it runs (cluster/services/drift.py)


def read_private_key(path: str, what: str, fix: str) -> str:
    """The SSH private key at PATH, for a connection; a clear error naming WHAT and FIX otherwise."""
    try:
        return Path(path).read_text()
    except OSError as err:
        raise RuntimeError(f"cannot read {what} {path} ({err.strerror}). Fix: {fix}") from None
