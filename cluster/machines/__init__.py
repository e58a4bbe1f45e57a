"""Machine providers. Each turns a Node into a machine that answers SSH, and nothing more.

Every provider yields a Machine: the node it stands for, the Pulumi resource that owns
the machine's life (the parent of every step run on it) and an SSH connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import remote

from cluster.render import render_script
from cluster.topology import Node


@dataclass(frozen=True)
class Machine:
    node: Node
    resource: pulumi.ComponentResource
    connection: pulumi.Output[remote.ConnectionArgs]
    ssh: str  # the command a person types to log in
    power: pulumi.Resource | None = None  # whether it runs (cluster/services/drift.py)
    user: str = "root"  # who the connection logs in as; steps run as root (through sudo otherwise)
    arch: str = "amd64"  # the binaries it takes (existing machines: what the pre-flight found)
    # What the steps on it are deleted with (Pulumi's deletedWith): on a machine that its own
    # deletion destroys (a lab machine, a Vagrant VM), the stack's Teardown, so destroying the
    # whole stack does not uninstall agents one by one from machines about to vanish. None on an
    # existing host: every step gives back what it changed there.
    deleted_with: pulumi.Resource | None = None

    def as_root(self, script: str) -> str:
        """SCRIPT as a step's command: as it is for root, else run by bash through `sudo -n`
        (templates/steps/become.sh.j2), its stdin passed on."""
        return script if self.user == "root" else render_script("become.sh.j2", script=script)

    def probe_target(self) -> pulumi.Output[dict[str, object]]:
        """The connection as cluster/sshcmd.py takes it (for the drift probe)."""
        def target(c: remote.ConnectionArgs) -> dict[str, object]:
            def one(x: Any) -> dict[str, object]:
                return {"host": x.host, "port": x.port or 22, "user": x.user or "root",
                        "private_key": x.private_key or "", "host_key": x.host_key or ""}
            return {**one(c), **({"proxy": one(c.proxy)} if c.proxy else {})}
        return self.connection.apply(target)


def read_private_key(path: str, what: str, fix: str) -> str:
    """The SSH private key at PATH, for a connection; a clear error naming WHAT and FIX otherwise."""
    try:
        return Path(path).read_text()
    except OSError as err:
        raise RuntimeError(f"cannot read {what} {path} ({err.strerror}). Fix: {fix}") from None
