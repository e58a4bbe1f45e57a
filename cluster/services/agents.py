"""Every service on every machine, and the gates between the tiers.

Order: Consul servers -> (gate: leader, all servers alive) -> Nomad servers -> (gate) ->
Consul clients on the load balancer and the clients, Nomad clients and cAdvisor on the
clients -> (gate: every member alive, every Nomad node ready) -> the load balancer's nginx
and consul-template. Each install is one remote Command per machine whose `triggers` carry
the hash of what it installs, so a change re-runs exactly that step.

Consul and Nomad on a running cluster are rolled: the install step stages a change, and a
chain of roll steps restarts the agents one machine at a time, each waiting until healthy:
the servers (a first pass skips the machine that leads, a second pass restarts it: the
leader last), then the load balancer and the clients. Removing a machine takes it out of
the cluster first: its Nomad node is drained and purged, its Consul agent leaves (unless the
whole stack is destroyed with the machine: Machine.deleted_with).

The jobs' images are built on the first client as soon as its Docker and the registry are
installed (cluster/services/images.py); that client's roll turn waits for the builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from cluster import install, render
from cluster.binaries import upload_key
from cluster.config import BACKEND_PORT, BinaryPin, ClusterSpec
from cluster.images import JobImage, base_image
from cluster.machines import Machine
from cluster.services import acl
from cluster.services.drift import AgentState
from cluster.services.images import image_pushed_step, image_step
from cluster.topology import REGISTRY_PORT, Node, Role, registry

ROLLED = ("consul", "nomad")  # restarted by the roll steps, one machine at a time

Secrets = Mapping[str, pulumi.Output[str]]  # the secret values of one machine's files


def nomad_api(node: Node) -> str:
    """Nomad's API on NODE, as the machines' scripts write it."""
    return install.nomad_url(node.address)


def _with_secret_files(spec: ClusterSpec, agent: install.Agent, node: Node) -> install.Agent:
    """AGENT with the secret files it gets on NODE, and those it must not keep."""
    wanted = render.secret_paths(spec, agent.product, node)
    plain = {f.path for f in agent.files}  # a file that is a secret only in some setups
    return dataclasses.replace(agent, secrets=tuple(wanted), retired=tuple(
        p for p in render.SECRET_FILES.get(agent.product, ()) if p not in wanted and p not in plain))


def _consul_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    return _with_secret_files(spec, install.Agent(
        product="consul", pin=spec.install.consul, files=render.consul_files(spec, node, servers),
        user="consul", data_dir="/opt/consul", address=node.address,
        server=node.role is Role.SERVER), node)


def _nomad_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    server = node.role is Role.SERVER
    return _with_secret_files(spec, install.Agent(
        product="nomad", pin=spec.install.nomad, files=render.nomad_files(spec, node, servers),
        user="nomad" if server else "root", data_dir="/opt/nomad", address=node.address,
        server=server), node)


def _cadvisor(spec: ClusterSpec, node: Node) -> install.Agent:
    return install.Agent(product="cadvisor", pin=spec.install.cadvisor, user="root", data_dir=None,
                         files=render.cadvisor_files(spec, node), address=node.address)


def _docker(spec: ClusterSpec, node: Node) -> install.Agent:
    """The container engine of a client: Debian's docker.io at the pinned version (the lab base
    and the box carry it, its units off until this step turns them on); with TLS it trusts the
    cluster's CA (the registry's certificate)."""
    return _with_secret_files(spec, install.Agent(
        product="docker", pin=None, user="root", data_dir=None, files=render.docker_files(spec, node),
        address=node.address, packages=(spec.docker.package,), package_pins=(spec.docker,),
        starts_at_reboot=True, runtime=render.DOCKER_RENDERED, data=render.DOCKER_DATA,
        images=(f"{registry(spec)}/", base_image().split(":")[0] + ":")), node)


def _dnsmasq(spec: ClusterSpec, node: Node) -> install.Agent:
    """The machine's DNS forwarder (Debian's dnsmasq): <service>.service.consul for the machine
    and, on a client, its containers."""
    return install.Agent(product="dnsmasq", pin=None, user="root", data_dir=None,
                         files=render.dnsmasq_files(spec, node), address=node.address, packages=("dnsmasq",))


def _registry(spec: ClusterSpec, node: Node) -> install.Agent:
    """The cluster's image registry on the load balancer (Debian's docker-registry): the
    clients pull the images the program builds from it; TLS with the machine's certificate."""
    scheme, ca = ("https", f"{render.REGISTRY_TLS}/ca.pem") if spec.security.tls else ("http", "")
    return _with_secret_files(spec, install.Agent(
        product="docker-registry", pin=None, user="docker-registry", data_dir=None,
        files=render.registry_files(spec, node), address=node.address, packages=("docker-registry",),
        runtime=render.REGISTRY_RENDERED,
        health=f"{scheme}://{node.address}:{REGISTRY_PORT}/v2/", health_ca=ca), node)


def _balancer(spec: ClusterSpec, node: Node, servers: list[Node]) -> tuple[install.Agent, install.Agent]:
    """The front balancer (on the LB) or, on a client in two-tier mode, its backend balancer."""
    if node.role is Role.CLIENT:
        nginx_files, template_files = render.backend_files(spec, node)
        health = f"http://{node.address}:{BACKEND_PORT}/health"
    else:
        nginx_files, template_files = render.loadbalancer_files(spec, node, servers)
        health = f"http://{node.address}/health"
    nginx = install.Agent(product="nginx", pin=None, files=nginx_files, user="root", data_dir=None,
                          address=node.address, packages=("nginx",), health=health,
                          runtime=render.NGINX_RENDERED)
    consul_template = _with_secret_files(spec, install.Agent(
        product="consul-template", pin=spec.install.consul_template, files=template_files, user="root",
        data_dir=None, address=node.address, runtime=render.BALANCER_RENDERED), node)
    return nginx, consul_template


def _binary(machine: Machine, spec: ClusterSpec, pin: BinaryPin | None, local_path: str | None,
            generation: pulumi.Output[int], identity: pulumi.Resource | None) -> remote.CopyToRemote | None:
    """With the `upload` source, copy the controller's binary to the machine's uploads dir,
    which its IDENTITY step makes (again when a refresh found the product drifted: its install
    step may need it)."""
    if pin is None or spec.install.source != "upload" or local_path is None:
        return None
    return remote.CopyToRemote(
        f"{machine.node.name}-{pin.product}-upload",
        connection=machine.connection,
        source=pulumi.FileAsset(local_path),
        remote_path=install.staged_path(pin),
        triggers=[pin.sha256, generation],
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=[identity] if identity else []),
    )


@dataclass(frozen=True)
class MachinePlan:
    """What every install step on one machine takes: the machine, the stack, the servers (to
    leave and to join), the controller's binaries to upload, the machine's secret values and
    its drift state (cluster/services/drift.py)."""

    machine: Machine
    spec: ClusterSpec
    servers: list[Node]
    uploads: Mapping[str, str]
    secrets: Secrets
    state: AgentState
    identity: pulumi.Resource | None = None  # the machine's identity step (it makes the uploads' dir)
    # Values only one product's files read, by product: a client's Nomad reads the machines'
    # Nomad token (made by nomad-acl), so its Nomad step waits for that and its others do not.
    product_secrets: Mapping[str, Secrets] = dataclasses.field(default_factory=dict)

    def step(self, agent: install.Agent, after: Sequence[pulumi.Resource]) -> remote.Command:
        """Install the agent (create), converge it (update: Consul and Nomad only staged for the
        roll), take it out of the cluster and remove it (delete). Its secret files go on stdin;
        their hash joins the triggers, as does the product's repair generation (a drift found by
        a refresh runs the step again)."""
        machine, spec = self.machine, self.spec
        if agent.pin is not None:  # the binary of the machine's architecture
            agent = dataclasses.replace(agent, pin=agent.pin.for_arch(machine.arch, spec.install.source))
        generation = self.state.generation(agent.product)
        local = self.uploads.get(upload_key(agent.product, machine.arch))
        upload = _binary(machine, spec, agent.pin, local, generation, self.identity)
        binary = f"{agent.pin.version} {agent.pin.sha256}" if agent.pin else ""
        digest = hashlib.sha256(f"{binary}\0{render.digest(agent.files)}".encode()).hexdigest()
        triggers: list[object] = [digest, generation]
        stdin = None
        if agent.secrets:
            node = machine.node
            values = {**self.secrets, **self.product_secrets.get(agent.product, {})}
            stdin = pulumi.Output.all(**values).apply(
                lambda values: install.secrets_bundle(render.secret_files(spec, agent.product, node, values)))
            triggers.append(stdin.apply(lambda b: hashlib.sha256(b.encode()).hexdigest()))
        return remote.Command(
            f"{machine.node.name}-{agent.product}",
            connection=machine.connection,
            create=machine.as_root(install.install_script(agent, spec.install)),
            update=machine.as_root(install.install_script(agent, spec.install,
                                                          restart=agent.product not in ROLLED)),
            delete=machine.as_root(install.uninstall_script(agent, self.servers)),
            stdin=stdin,
            triggers=triggers,
            opts=pulumi.ResourceOptions(parent=machine.resource, deleted_with=machine.deleted_with,
                                        depends_on=[*after, *([upload] if upload else [])]),
        )


def machine_agents(spec: ClusterSpec, node: Node, servers: list[Node]) -> list[install.Agent]:
    """Every agent NODE runs: Consul and the DNS forwarder; Nomad on servers and clients; Docker
    and cAdvisor on clients; the registry and the balancer (nginx, consul-template) on the load balancer, and
    in two-tier mode a balancer on each client."""
    agents = [_consul_agent(spec, node, servers), _dnsmasq(spec, node)]
    if node.role is not Role.LB:
        agents.append(_nomad_agent(spec, node, servers))
    if node.role is Role.CLIENT:
        agents += [_docker(spec, node), _cadvisor(spec, node)]
    if node.role is Role.LB:
        agents.append(_registry(spec, node))
    if node.role is Role.LB or (node.role is Role.CLIENT and spec.load_balancing == "two-tier"):
        agents += _balancer(spec, node, servers)
    return agents


def agent_state(spec: ClusterSpec, machine: Machine, servers: list[Node]) -> AgentState:
    """The machine's drift state: the probe of the agents it runs, over its connection."""
    connection = machine.probe_target()
    # After the machine's power: a machine found stopped is booted before it is looked at again.
    return AgentState(f"{machine.node.name}-state", pulumi.Output.secret(connection),
                      [a.product for a in machine_agents(spec, machine.node, servers)],
                      opts=pulumi.ResourceOptions(parent=machine.resource,
                                                  depends_on=[machine.power] if machine.power else []))


def _roll(name: str, machine: Machine, server_count: int, staged: Sequence[remote.Command],
          after: Sequence[pulumi.Resource], defer_leader: bool = False) -> remote.Command:
    """A machine's turn in the rolling restart: restarts what its install steps STAGED, after
    the turn before it (AFTER). It runs again whenever one of those steps changes."""
    script = machine.as_root(install.roll_script(machine.node, server_count, defer_leader))
    return remote.Command(
        name, connection=machine.connection, create=script, update=script,
        triggers=[s.triggers for s in staged],
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=[*staged, *after]),
    )


def _rejoin(machine: Machine, staged: Sequence[remote.Command], after: remote.Command) -> remote.Command:
    """After a client's roll turn (AFTER): if it rebooted the client, the client back in the
    cluster before the next turn. It runs whenever the turn does."""
    script = machine.as_root(install.rejoin_script(machine.node))
    return remote.Command(
        f"{machine.node.name}-rejoin", connection=machine.connection, create=script, update=script,
        triggers=[s.triggers for s in staged],
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=[after]),
    )


def _gate(name: str, machine: Machine, script: str, after: Sequence[pulumi.Resource],
          triggers: Sequence[object]) -> remote.Command:
    """A check that waits until a tier works; it runs again when its triggers change."""
    script = machine.as_root(script)
    return remote.Command(
        name, connection=machine.connection, create=script, update=script, triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=list(after)),
    )


@dataclass(frozen=True)
class ServerTier:
    """The servers' steps, and what the other tiers wait for or take from them."""

    consul: list[remote.Command]  # each server's Consul step, in the order of the servers
    nomad: list[remote.Command]  # each server's Nomad step
    steps: list[pulumi.CustomResource]  # every step of the tier: installs, gates, ACLs
    consul_ready: list[pulumi.Resource]  # Consul's servers work (and its ACLs are written)
    nomad_gate: remote.Command  # Nomad's servers work
    nomad_ready: list[pulumi.Resource]  # ... and its ACLs are made
    nomad_machine_token: pulumi.Output[str] | None = None  # with ACLs: the machines' Nomad token
    nomad_jobs_token: pulumi.Output[str] | None = None  # with ACLs: the job resources' token
    nomad_status_token: pulumi.Output[str] | None = None  # with ACLs: `./run status`'s (read only)


def server_tier(spec: ClusterSpec, servers: list[Machine], nodes: list[Node],
                identity: Mapping[str, pulumi.Resource], plans: Mapping[str, MachinePlan],
                secrets: Mapping[str, Secrets]) -> ServerTier:
    """The Consul servers, their gate and (with ACLs) Consul's ACLs; then the Nomad servers,
    their gate and Nomad's ACLs. NODES: every node of the stack (each gets a Consul token)."""
    server_nodes = [m.node for m in servers]
    root = servers[0]
    count = len(servers)
    consul = [plans[m.node.name].step(_consul_agent(spec, m.node, server_nodes), [identity[m.node.name]])
              for m in servers]
    consul_gate = _gate("consul-servers-ready", root, install.consul_servers_gate(count), consul,
                        [s.triggers for s in consul])
    steps: list[pulumi.CustomResource] = [*consul, consul_gate]
    consul_ready: list[pulumi.Resource] = [consul_gate]
    if spec.security.acl:
        consul_acl = acl.consul_step(spec, root, nodes, secrets, [consul_gate])
        consul_ready = [consul_acl]
        steps.append(consul_acl)
    nomad = [plans[m.node.name].step(_nomad_agent(spec, m.node, server_nodes), consul_ready)
             for m in servers]
    nomad_gate = _gate("nomad-servers-ready", root, install.nomad_servers_gate(root.node, count), nomad,
                       [s.triggers for s in nomad])
    steps += [*nomad, nomad_gate]
    if not spec.security.acl:
        return ServerTier(consul, nomad, steps, consul_ready, nomad_gate, [nomad_gate])
    nomad_acl = acl.nomad_step(root, [nomad_gate])
    steps.append(nomad_acl)
    tokens = nomad_acl.stdout.apply(acl.parse_nomad_tokens)
    # Secrets: the step's stdout is.
    return ServerTier(consul, nomad, steps, consul_ready, nomad_gate, [nomad_acl],
                      nomad_machine_token=tokens.apply(lambda t: t["machine"]),
                      nomad_jobs_token=tokens.apply(lambda t: t["jobs"]),
                      nomad_status_token=tokens.apply(lambda t: t["status"]))


@dataclass(frozen=True)
class MachineSteps:
    """One machine's install steps, and those of them its roll step restarts."""

    steps: list[remote.Command]
    staged: list[remote.Command]  # its Consul and Nomad steps (a client's: and Docker's)
    registry: remote.Command | None = None  # the load balancer's: the image registry's step
    docker: remote.Command | None = None  # a client's: its Docker step


def client_tier(plan: MachinePlan, identity: pulumi.Resource, consul_ready: Sequence[pulumi.Resource],
                nomad_ready: Sequence[pulumi.Resource]) -> MachineSteps:
    """The agents of the load balancer or of a client: Consul (after CONSUL_READY) and the DNS
    forwarder; on the load balancer, the registry; on a client, Docker, Nomad (after
    NOMAD_READY), cAdvisor and, in two-tier mode, its backend balancer."""
    spec, node, servers = plan.spec, plan.machine.node, plan.servers
    consul = plan.step(_consul_agent(spec, node, servers), [identity, *consul_ready])
    dns = plan.step(_dnsmasq(spec, node), [consul])
    if node.role is Role.LB:
        registry = plan.step(_registry(spec, node), [identity])
        return MachineSteps([consul, dns, registry], [consul], registry)
    docker = plan.step(_docker(spec, node), [identity])
    # Nomad after Docker: its docker driver is detected at start.
    nomad = plan.step(_nomad_agent(spec, node, servers), [consul, docker, *nomad_ready])
    # cAdvisor after Docker: it looks for Docker's daemon once, when it starts.
    steps = [consul, dns, docker, nomad, plan.step(_cadvisor(spec, node), [identity, docker])]
    if spec.load_balancing == "two-tier":
        nginx, consul_template = _balancer(spec, node, servers)
        nginx_step = plan.step(nginx, [consul])
        steps += [nginx_step, plan.step(consul_template, [nginx_step])]
    # Docker's too: where it waits for a reboot, the roll turn reboots the machine.
    return MachineSteps(steps, [consul, docker, nomad], docker=docker)


def load_balancer(plan: MachinePlan, after: Sequence[pulumi.Resource]) -> list[remote.Command]:
    """The front balancer's nginx (after AFTER: the whole cluster works), then consul-template."""
    nginx, consul_template = _balancer(plan.spec, plan.machine.node, plan.servers)
    nginx_step = plan.step(nginx, after)
    return [nginx_step, plan.step(consul_template, [nginx_step])]


@dataclass(frozen=True)
class Rolls:
    """The roll chain: the servers' turns, the others' (the clients' rejoin steps among them),
    and each client's rejoin step by node name (after it, the client runs what it installed)."""

    servers: list[remote.Command]
    others: list[remote.Command]
    rejoined: dict[str, remote.Command]


def clients_at_once(clients: int) -> int:
    """How many clients take their roll turn together: a fifth of them (at least one), so the
    chain of turns grows by one turn per five clients, not per client."""
    return max(1, clients // 5)


def rolling_restarts(servers: list[Machine], tier: ServerTier, others: Sequence[tuple[Machine, MachineSteps]],
                     before_turn: Mapping[str, Sequence[pulumi.Resource]] | None = None) -> Rolls:
    """The chain of roll steps: the servers one at a time (with several, a pass that skips the
    leader, then the leader's pass), then the load balancer, then the clients in groups of
    clients_at_once (each client's turn followed by its rejoin step), each turn or group after
    the one before. BEFORE_TURN: by node name, what else a machine's turn waits for (work on
    it that a restart or a reboot would break: the image build on the builder)."""
    before_turn = before_turn or {}
    count = len(servers)
    passes = [("roll", count > 1), *([("roll-leader", False)] if count > 1 else [])]
    server_turns = [(f"{m.node.name}-{suffix}", m, [consul, nomad], defer_leader)
                    for suffix, defer_leader in passes
                    for m, consul, nomad in zip(servers, tier.consul, tier.nomad, strict=True)]
    rolls: list[remote.Command] = []
    previous: list[pulumi.Resource] = [tier.nomad_gate]  # what the next turn (or group) waits for
    for name, machine, staged, defer_leader in server_turns:
        rolls.append(_roll(name, machine, count, staged, previous, defer_leader))
        previous = [rolls[-1]]
    balancers = [(m, steps) for m, steps in others if m.node.role is not Role.CLIENT]
    clients = [(m, steps) for m, steps in others if m.node.role is Role.CLIENT]
    size = clients_at_once(len(clients))
    groups = [[pair] for pair in balancers] + [clients[i:i + size] for i in range(0, len(clients), size)]
    rejoined: dict[str, remote.Command] = {}
    for group in groups:
        ends: list[pulumi.Resource] = []
        for machine, steps in group:
            rolls.append(_roll(f"{machine.node.name}-roll", machine, count, steps.staged,
                               [*previous, *before_turn.get(machine.node.name, [])]))
            if machine.node.role is Role.CLIENT:
                rejoined[machine.node.name] = _rejoin(machine, steps.staged, rolls[-1])
                rolls.append(rejoined[machine.node.name])
            ends.append(rolls[-1])
        previous = ends
    return Rolls(rolls[:len(server_turns)], rolls[len(server_turns):], rejoined)


@dataclass
class Agents:
    """The steps agents() made, and (with ACLs) the job resources' Nomad token and the
    read-only status token."""

    steps: list[pulumi.CustomResource]
    nomad_jobs_token: pulumi.Output[str] | None = None
    nomad_status_token: pulumi.Output[str] | None = None
    # By job: the step after which its image is in the registry (cluster/services/images.py).
    images: dict[str, remote.Command] = field(default_factory=dict)


def _nomad_token(node: Node, tier: ServerTier) -> Mapping[str, Secrets]:
    """What a client's Nomad files read besides the machine's own values: the machines' Nomad
    token (from nomad-acl; with ACLs only)."""
    if node.role is Role.CLIENT and tier.nomad_machine_token is not None:
        return {"nomad": {"nomad_machine_token": tier.nomad_machine_token}}
    return {}


def agents(spec: ClusterSpec, machines: list[Machine], identity: Mapping[str, pulumi.Resource],
           uploads: Mapping[str, str], secrets: Mapping[str, Secrets] | None = None,
           images: Sequence[JobImage] = ()) -> Agents:
    """Every agent install, gate, ACL and roll step, each machine's drift state and the IMAGES'
    builds (on the first client), in dependency order. SECRETS: per machine, the secret values
    its files take (program.make_secrets; none with security off)."""
    secrets = secrets or {}
    servers = [m for m in machines if m.node.role is Role.SERVER]
    others = [m for m in machines if m.node.role is not Role.SERVER]
    server_nodes = [m.node for m in servers]

    def plan(machine: Machine, product_secrets: Mapping[str, Secrets] | None = None) -> MachinePlan:
        return MachinePlan(machine, spec, server_nodes, uploads, secrets.get(machine.node.name, {}),
                           agent_state(spec, machine, server_nodes), identity.get(machine.node.name),
                           product_secrets or {})

    server_plans = {m.node.name: plan(m) for m in servers}
    tier = server_tier(spec, servers, [m.node for m in machines], identity, server_plans, secrets)
    other_plans = {m.node.name: plan(m, _nomad_token(m.node, tier)) for m in others}
    installed = [(m, client_tier(other_plans[m.node.name], identity[m.node.name], tier.consul_ready,
                                 tier.nomad_ready))
                 for m in others]
    # The images are built once the first client's Docker and the registry are installed; that
    # client's roll turn waits for the builds, and a check after the turn finishes any build
    # that had to wait for the turn's reboot.
    builder, built_on = next((m, done) for m, done in installed if m.node.role is Role.CLIENT)
    registry = [done.registry for _, done in installed if done.registry is not None]
    build_after: list[pulumi.Resource] = [s for s in (built_on.docker, *registry) if s is not None]
    builds = {image.job: image_step(image, builder, spec.security.tls, build_after) for image in images}
    rolls = rolling_restarts(servers, tier, installed, {builder.node.name: list(builds.values())})
    pushed = {image.job: image_pushed_step(image, builder, spec.security.tls,
                                           [builds[image.job], rolls.rejoined[builder.node.name]])
              for image in images}
    server_rolls, other_rolls = rolls.servers, rolls.others
    # Each server's DNS forwarder once Consul's ACLs are written (its default token answers).
    server_dns = [server_plans[m.node.name].step(_dnsmasq(spec, m.node), [consul, *tier.consul_ready])
                  for m, consul in zip(servers, tier.consul, strict=True)]
    # Clients install while the servers roll; the cluster is ready after the last turn.
    client_steps = [s for _, done in installed for s in done.steps]
    nomad_clients = sum(1 for m in machines if m.node.role is Role.CLIENT)
    cluster_gate = _gate(
        "cluster-ready", servers[0],
        install.cluster_gate(servers[0].node, len(servers), len(others), nomad_clients),
        [*server_dns, *client_steps, *other_rolls],
        # Only the shape of the cluster: a change on one client re-runs that client's steps
        # (each waits for its own agent to work), not this gate.
        [len(servers), len(others), nomad_clients])
    balancers = [step for m in others if m.node.role is Role.LB
                 for step in load_balancer(other_plans[m.node.name], [cluster_gate])]
    states = [p.state for p in [*server_plans.values(), *other_plans.values()]]
    steps = [*tier.steps, *server_dns, *server_rolls, *client_steps, *other_rolls, cluster_gate, *balancers,
             *builds.values(), *pushed.values()]
    return Agents([*states, *steps], tier.nomad_jobs_token, tier.nomad_status_token, images=pushed)
