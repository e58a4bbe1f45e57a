"""The `nspawn` machine provider: lab machines made by `python3 -m lab` on this host.

Create runs `lab up`, delete runs `lab down`, both as local commands; a refresh that finds
the machine stopped (cluster/services/drift.py) makes the next up run `lab up` again. The program must
itself run inside the lab's network namespace (`python3 -m lab exec -- pulumi up`): the
machines' addresses exist only there, and nothing may be sent to them from anywhere else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import local, remote

from cluster.machines import Machine, read_private_key
from cluster.services.drift import MachinePower
from cluster.topology import Node, Role

LAB_NETNS = "hcl-lab"


class NotInLabNetworkError(RuntimeError):
    pass


def require_lab_network() -> None:
    """Refuse to run unless this process is inside the lab's network namespace."""
    lab = Path("/run/netns") / LAB_NETNS
    try:
        inside = os.stat("/proc/self/ns/net").st_ino == os.stat(lab).st_ino
    except FileNotFoundError:
        inside = False
    if not inside:
        raise NotInLabNetworkError(
            "the nspawn machine provider must run inside the lab network namespace "
            f"({LAB_NETNS}); lab addresses exist only there. Fix: run `./run up`, or "
            "`python3 -m lab exec -- pulumi up --stack lab`")


def _read_key(path: str) -> str:
    return read_private_key(path, "the lab SSH key (made by `python3 -m lab up`)",
                            "`python3 -m lab up` any machine to recreate it, then `pulumi refresh`")


class NspawnMachine(pulumi.ComponentResource):
    """One lab machine: a systemd-nspawn container with its own address on the lab switch."""

    def __init__(self, node: Node, stack: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hashicluster:machines:NspawnMachine", node.name, None, opts)
        machine = f"{stack}-{node.name}"
        # Clients run containers (Docker, Nomad's exec driver): see `lab up --containers`.
        containers = " --containers" if node.role is Role.CLIENT else ""
        up = f"python3 -m lab up {machine} --address {node.address}{containers}"
        # A machine is made once: its settings change later through its power resource, which
        # runs the new `up` (a running machine applies them at its next reboot). Updating this
        # resource instead would make its outputs unknown until it ran, and the preview would
        # show every step that connects to the machine as replaced.
        self.lab = local.Command(
            f"{node.name}-lab",
            create=up,
            delete=f"python3 -m lab down {machine}",
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["create"]),
        )
        # A refresh that finds the machine stopped makes the next up boot it with its disk.
        self.power = MachinePower(f"{node.name}-power", kind="nspawn", machine=machine, boot=up,
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=[self.lab]))
        info: pulumi.Output[dict[str, Any]] = self.lab.stdout.apply(json.loads)
        self.address: pulumi.Output[str] = info.apply(lambda i: str(i["address"]))
        self.connection: pulumi.Output[remote.ConnectionArgs] = info.apply(
            lambda i: remote.ConnectionArgs(
                host=i["address"],
                user=i["user"],
                port=i.get("ssh_port", 22),
                private_key=_read_key(i["private_key_path"]),  # the provider keeps `connection` secret
                host_key=i["host_key_public"],
                dial_error_limit=20,
            ))
        self.register_outputs({"address": self.address})


def machine(node: Node, stack: str) -> Machine:
    m = NspawnMachine(node, stack)
    return Machine(node=node, resource=m, connection=m.connection,
                   ssh=f"python3 -m lab ssh {stack}-{node.name}", power=m.power)
