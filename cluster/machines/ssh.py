"""The `ssh` machine provider: machines that exist already, reached over SSH.

The program does not make or remove these machines: each is a component (the parent of the
steps run on it) with a connection built from the stack's config: the login's user, its key
(or the SSH agent), the pinned host key, and the bastion as the connection's proxy. A login
that is not root runs every step through `sudo -n` (Machine.as_root).

Before any resource, the pre-flight checks (cluster/preflight.py) look at every host; a host
trusted on first use shows its key there, and a `HostKey` resource records it in the stack:
later runs connect with the recorded key only, and a host that shows another one fails the
preview (the resource's check) naming the host.

Pulumi runs the HostKey provider in a separate process from a dill pickle that refers to this
module by name (like cluster/jobs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi_command import remote

from cluster import preflight
from cluster.config import ClusterSpec, SshHost, SshLogin
from cluster.machines import Machine, read_private_key
from cluster.topology import Node


class HostKeyProvider(dynamic.ResourceProvider):
    """Records the key a host trusted on first use showed; refuses another one afterwards."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        recorded = (olds or {}).get("key")
        if recorded and news.get("seen") != recorded:
            return dynamic.CheckResult(news, [dynamic.CheckFailure(
                "seen", f"{news['host']} now shows the SSH host key {news.get('seen')}, not the one recorded "
                f"when it was first trusted ({recorded}): it may not be the same machine. Fix: check the "
                "machine; if its key changed on purpose, pin the new key as its hostKey")])
        return dynamic.CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(str(props["host"]), {**props, "key": props["seen"]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=olds.get("host") != news.get("host"), replaces=["host"])


class HostKey(dynamic.Resource, module="machines", name="HostKey"):
    """The SSH host key a machine showed when it was first trusted."""

    key: pulumi.Output[str]

    def __init__(self, name: str, host: str, seen: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(HostKeyProvider(), name, {"host": host, "seen": seen, "key": None}, opts)


def _key(login: SshLogin, what: str) -> str | None:
    """The login's private key (None: the SSH agent)."""
    if not login.private_key_file:
        return None
    return read_private_key(str(Path(login.private_key_file).expanduser()), f"the SSH key of {what}",
                            f"make {login.private_key_file} readable, or leave privateKeyFile out to use the "
                            "SSH agent")


def _proxy(bastion: SshLogin) -> remote.ProxyConnectionArgs:
    return remote.ProxyConnectionArgs(host=bastion.address, port=bastion.port, user=bastion.user,
                                      private_key=_key(bastion, "the bastion"), host_key=bastion.host_key)


class SshMachine(pulumi.ComponentResource):
    """One existing machine: nothing is made, only steps run on it."""

    def __init__(self, node: Node, host: SshHost, bastion: SshLogin | None, facts: preflight.Facts) -> None:
        super().__init__("hashicluster:machines:SshMachine", node.name, None)
        login = host.login
        host_key: pulumi.Input[str] = login.host_key
        if login.tofu:
            host_key = HostKey(f"{node.name}-host-key", preflight.describe(login), facts.host_key,
                               opts=pulumi.ResourceOptions(parent=self)).key
        self.connection: pulumi.Output[remote.ConnectionArgs] = pulumi.Output.from_input(host_key).apply(
            lambda key: remote.ConnectionArgs(
                host=login.address, port=login.port, user=login.user, private_key=_key(login, node.name),
                host_key=key, proxy=_proxy(bastion) if host.via_bastion and bastion else None,
                dial_error_limit=5))
        self.register_outputs({"address": node.address, "arch": facts.arch})


def machines(spec: ClusterSpec, nodes: list[Node], found: Mapping[str, preflight.Facts]) -> list[Machine]:
    """Every node's machine, with what the pre-flight checks FOUND on its host."""
    settings = spec.machines.ssh
    assert settings is not None
    result = []
    for node, host in zip(nodes, settings.hosts, strict=True):
        machine = SshMachine(node, host, settings.bastion, found[node.name])
        login = host.login
        jump = (f"-J {settings.bastion.user}@{settings.bastion.address}:{settings.bastion.port} "
                if host.via_bastion and settings.bastion else "")
        ssh = f"ssh {jump}-p {login.port} {login.user}@{login.address}"
        result.append(Machine(node=node, resource=machine, connection=machine.connection, ssh=ssh,
                              user=login.user, arch=found[node.name].arch))
    return result
