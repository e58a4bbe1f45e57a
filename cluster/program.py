"""Wires the cluster together: config -> machines -> steps -> stack outputs.

Kept thin: decisions live in config.py and topology.py; resources are made here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from cluster import binaries
from cluster import config as cfg
from cluster import preflight as checks
from cluster.images import job_image
from cluster.jobs import NomadJob
from cluster.machines import Machine, nspawn, ssh, vagrant
from cluster.secrets import (
    CLUSTER_OUTPUTS,
    NODE_OUTPUTS,
    ClusterSecrets,
    NodeCredentials,
    TokenSecret,
    node_names,
)
from cluster.services.agents import agents
from cluster.services.identity import identity
from cluster.topology import Node, Role, nodes, registry

# Looks at existing machines before anything is made (cluster/preflight.py).
Preflight = Callable[[cfg.ClusterSpec, list[Node]], Mapping[str, checks.Facts]]


def stack_config() -> dict[str, str]:
    """This project's config values as raw strings, keys without the namespace."""
    every: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = cfg.NAMESPACE + ":"
    return {k[len(prefix):]: v if isinstance(v, str) else str(v)
            for k, v in every.items() if k.startswith(prefix)}


class Teardown(pulumi.ComponentResource):
    """Stands for the stack as a whole: it is deleted only when the whole stack is destroyed
    (`pulumi destroy`), never by a change such as a client less. The steps on the program's own
    machines are deleted with it (Pulumi's deletedWith): a destroy deletes those machines, so
    making their agents leave, drain and uninstall one by one first would only cost time. A
    client taken away by a change still leaves gracefully: its steps' removals run."""

    def __init__(self, stack: str) -> None:
        super().__init__("hashicluster:index:Teardown", stack)
        self.register_outputs({})


def make_machines(spec: cfg.ClusterSpec, check_network: bool = True,
                  facts: Mapping[str, checks.Facts] | None = None) -> list[Machine]:
    """One machine per node, made by the configured provider (existing machines: with the
    FACTS their pre-flight checks found). The steps on machines the program makes are deleted
    with the stack's Teardown; an existing host's are not."""
    if spec.machines.provider == "ssh":
        return ssh.machines(spec, nodes(spec), facts or {})
    if spec.machines.provider == "nspawn":
        if check_network:
            nspawn.require_lab_network()
        made = [nspawn.machine(node, spec.stack) for node in nodes(spec)]
    else:
        made = vagrant.machines(spec, nodes(spec))
    teardown = Teardown(spec.stack)
    return [dataclasses.replace(m, deleted_with=teardown) for m in made]


def architectures(spec: cfg.ClusterSpec, facts: Mapping[str, checks.Facts]) -> list[str]:
    """The machines' architectures (amd64 for the program's own machines), each checked to
    have every product pinned (ConfigError naming the fix otherwise)."""
    arches = sorted({f.arch for f in facts.values()}) or [cfg.ARCHITECTURES[0]]
    for arch in arches:
        for product in cfg.PRODUCT_KEYS:
            spec.install.pin(product).for_arch(arch, spec.install.source)
    return arches


def make_secrets(spec: cfg.ClusterSpec, machines: list[Machine]) -> dict[str, dict[str, pulumi.Output[str]]]:
    """Per machine, the secret values its agents' files take: the cluster's (gossip keys, the
    CA, tokens; with ACLs the read-only status token too) and its own (key and certificate,
    Consul agent token). Nothing when security is off."""
    if not spec.security.any:
        return {}
    made = ClusterSecrets("cluster-secrets", spec.stack)
    shared = {name: getattr(made, name) for name in CLUSTER_OUTPUTS}
    if spec.security.acl:
        shared["consul_status_token"] = TokenSecret("consul-status-token").secret
        shared["consul_dns_token"] = TokenSecret("consul-dns-token").secret
    values = {}
    for m in machines:
        node = m.node
        own: dict[str, pulumi.Output[str]] = {}
        if spec.security.tls or spec.security.acl:  # its certificate, its Consul agent token
            kind = "server" if node.role is Role.SERVER else "client"
            roles = [f"{kind}.{spec.datacenter}.consul"]
            if node.role is not Role.LB:
                roles.append(f"{kind}.{spec.region}.nomad")
            creds = NodeCredentials(f"{node.name}-credentials", made,
                                    node_names(node.hostname, node.short_hostname, node.address, roles),
                                    opts=pulumi.ResourceOptions(parent=m.resource))
            own = {name: getattr(creds, name) for name in NODE_OUTPUTS}
        values[node.name] = {**shared, **own}
    return values


@dataclass
class Cluster:
    """What one stack is made of: its spec, its machines and every step run on them."""

    spec: cfg.ClusterSpec
    machines: list[Machine]
    steps: list[pulumi.CustomResource] = field(default_factory=list)
    jobs: list[NomadJob] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # job -> the image it runs
    ca_cert: pulumi.Output[str] | None = None  # with TLS: the cluster's CA certificate (public)
    # With ACLs: the management tokens, for people (the UIs, the CLIs); secret outputs.
    management_tokens: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    # With ACLs: the read-only tokens of `./run status` (cluster/status); secret outputs.
    status_tokens: dict[str, pulumi.Output[str]] = field(default_factory=dict)

    @property
    def nomad_api(self) -> str:
        scheme = "https" if self.spec.security.tls else "http"
        return f"{scheme}://{self.first(Role.SERVER).address}:4646"

    @property
    def deleted_with(self) -> pulumi.Resource | None:
        """What every machine's steps are deleted with, if they all are (Teardown)."""
        kept = {m.deleted_with for m in self.machines}
        return kept.pop() if len(kept) == 1 else None

    @property
    def nodes(self) -> list[Node]:
        return [m.node for m in self.machines]

    def first(self, role: Role) -> Node:
        """The first node of a role: the root server, the front load balancer."""
        return next(n for n in self.nodes if n.role is role)

    def outputs(self) -> dict[str, Any]:
        root, lb = self.first(Role.SERVER), self.first(Role.LB)
        return {
            "machines": {m.node.name: {"hostname": m.node.hostname, "address": m.node.address,
                                       "role": m.node.role.value, "ssh": m.ssh}
                         for m in self.machines},
            "hostsLines": [f"{n.address} {n.hostname}" for n in self.nodes],
            "consulUi": (f"https://{root.address}:8501/ui/" if self.spec.security.tls
                         else f"http://{root.address}:8500/ui/"),
            "nomadUi": f"{self.nomad_api}/ui/",
            "loadBalancer": f"http://{lb.address}/",
            "consulUiThroughLb": f"http://{lb.address}:8500/ui/",
            "fibUrl": f"http://{lb.hostname}/fib/10",
            "cadvisor": {n.name: f"http://{n.address}:8080/" for n in self.nodes if n.role is Role.CLIENT},
            "consulVersion": self.spec.install.consul.version,
            "nomadVersion": self.spec.install.nomad.version,
            "dockerVersion": self.spec.docker.version,
            "registry": registry(self.spec),
            "images": self.images,
            # The certificate to trust for the UIs and APIs (`curl --cacert`, the browser).
            **({"caCertificate": self.ca_cert} if self.ca_cert is not None else {}),
            # `pulumi stack output --show-secrets nomadManagementToken`: [secret] everywhere else.
            **{name: pulumi.Output.secret(token) for name, token in self.management_tokens.items()},
            **{name: pulumi.Output.secret(token) for name, token in self.status_tokens.items()},
        }


def build(raw: Mapping[str, str], stack: str, check_network: bool = True,
          pins: cfg.PinDefaults = binaries.defaults,
          local_binaries: Callable[[cfg.ClusterSpec, Sequence[str]], Mapping[str, str]] = binaries.uploads,
          preflight: Preflight = checks.check_all) -> Cluster:
    """Validate the config (existing machines: look at them), then create every resource of
    one stack.

    `pins` and `local_binaries` default to the toolchain's (see cluster/binaries.py); `preflight`
    to the real checks (cluster/preflight.py).
    """
    try:
        spec = cfg.load(raw, stack, pins)
        facts = preflight(spec, nodes(spec)) if spec.machines.provider == "ssh" else {}
        uploads = local_binaries(spec, architectures(spec, facts))
    except (cfg.ConfigError, checks.PreflightError) as err:
        raise pulumi.RunError(str(err)) from None
    machines = make_machines(spec, check_network, facts)
    cluster = Cluster(spec, machines)
    first = {m.node.name: identity(m, cluster.nodes) for m in cluster.machines}
    cluster.steps += list(first.values())
    secrets = make_secrets(spec, cluster.machines)
    images = {name: image for name in spec.jobs if (image := job_image(spec, name)) is not None}
    made = agents(spec, cluster.machines, first, uploads, secrets, list(images.values()))
    cluster.steps += made.steps
    root_values = secrets.get(cluster.first(Role.SERVER).name, {})
    if spec.security.tls:
        cluster.ca_cert = root_values["ca_cert_pem"]
    if spec.security.acl:
        cluster.management_tokens = {"consulManagementToken": root_values["consul_management_token"],
                                     "nomadManagementToken": root_values["nomad_management_token"]}
        if made.nomad_status_token is not None:
            cluster.status_tokens = {"statusConsulToken": root_values["consul_status_token"],
                                     "statusNomadToken": made.nomad_status_token}
    # Jobs come last: after every machine's steps, the load balancer included, and after
    # their image (if they run one) is in the registry.
    for name in spec.jobs:
        image = images.get(name)
        built = [made.images[name]] if image else []
        if image:
            cluster.images[name] = image.ref
        cluster.jobs.append(NomadJob(
            f"job-{name}", hcl=(cfg.JOBS_DIR / f"{name}.nomad.hcl").read_text(),
            address=cluster.nomad_api, ca_pem=cluster.ca_cert, token=made.nomad_jobs_token,
            variables={"image": image.ref} if image else None,
            # Gone with the machines when they all go with the stack (nothing left to stop).
            opts=pulumi.ResourceOptions(depends_on=[*cluster.steps, *built],
                                        deleted_with=cluster.deleted_with)))
    return cluster


def main() -> None:
    try:
        cluster = build(stack_config(), pulumi.get_stack())
    except nspawn.NotInLabNetworkError as err:
        raise pulumi.RunError(str(err)) from None
    for key, value in cluster.outputs().items():
        pulumi.export(key, value)
