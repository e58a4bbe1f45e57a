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
the cluster first: its Nomad node is drained and purged, its Consul agent leaves.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from cluster import install, render
from cluster.config import BACKEND_PORT, BinaryPin, ClusterSpec
from cluster.machines import Machine
from cluster.services import acl
from cluster.topology import Node, Role

# The scripts reach the APIs as /etc/consul.d/api.env says (install.USE_API): CONSUL_HTTP_ADDR
# and NOMAD_SCHEME (http, or https with the cluster's CA), and `api`, curl with the CA.
LEADER = 'api "{url}/v1/status/leader" | grep -q :'
CONSUL_URL = "$CONSUL_HTTP_ADDR"
ROLLED = ("consul", "nomad")  # restarted by the roll steps, one machine at a time
DRAIN_DEADLINE = "2m"  # then Nomad stops what is still running on a node being removed

# Shell functions for the roll steps' health conditions, and the count of the machine's
# Consul checks before anything restarts: all of them must pass again.
ROLL_PRELUDE = [install.USE_API, *r"""
servers_healthy() {  # URL COUNT: autopilot reports COUNT alive servers and none unhealthy
  r=$(api "$1/v1/operator/autopilot/health") || return 1
  case $r in *'"Healthy":false'*) return 1;; esac
  [ "$(printf %s "$r" | grep -o '"SerfStatus":"alive"' | wc -l)" -ge "$2" ]
}
local_checks() { api "$CONSUL_HTTP_ADDR/v1/agent/checks"; }
checks_passing() {  # COUNT: all local checks pass, and COUNT or more of them are Nomad's
  r=$(local_checks) || return 1
  case $r in *'"Status":"critical"'*|*'"Status":"warning"'*) return 1;; esac
  [ "$(printf %s "$r" | grep -o '"CheckID":"_nomad-check-' | wc -l)" -ge "$1" ]
}
# The instances' checks (Nomad registers them) must all come back; the machine's own (a
# backend balancer's) may come or go with the change being rolled.
checks=$(local_checks 2>/dev/null | grep -o '"CheckID":"_nomad-check-' | wc -l)
""".strip().splitlines()]


def _with_secret_files(spec: ClusterSpec, agent: install.Agent, node: Node) -> install.Agent:
    """AGENT with the secret files it gets on NODE, and those it must not keep."""
    wanted = render.secret_paths(spec, agent.product, node)
    plain = {f.path for f in agent.files}  # a file that is a secret only in some setups
    return dataclasses.replace(agent, secrets=tuple(wanted), retired=tuple(
        p for p in render.SECRET_FILES.get(agent.product, ()) if p not in wanted and p not in plain))


def _consul_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    return _with_secret_files(spec, install.Agent(
        product="consul", pin=spec.install.consul, files=render.consul_files(spec, node, servers),
        user="consul", data_dir="/opt/consul",
        # Server or client, the agent is working once it knows the cluster's leader.
        ready=LEADER.format(url=CONSUL_URL),
        ready_state="consul members; journalctl -u consul -n 20 --no-pager"), node)


def nomad_api(node: Node) -> str:
    """Nomad's API on NODE, as the machines' scripts write it."""
    return f"$NOMAD_SCHEME://{node.address}:4646"


def _nomad_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    url = nomad_api(node)
    ready = LEADER.format(url=url) if node.role is Role.SERVER else _nomad_node_ready(url)
    return _with_secret_files(spec, install.Agent(
        product="nomad", pin=spec.install.nomad, files=render.nomad_files(spec, node, servers),
        user="nomad" if node.role is Role.SERVER else "root", data_dir="/opt/nomad", ready=ready,
        ready_state=f"NOMAD_ADDR={url} nomad agent-info | head -40; journalctl -u nomad -n 20 --no-pager"),
        node)


def _cadvisor(spec: ClusterSpec, node: Node) -> install.Agent:
    return install.Agent(
        product="cadvisor", pin=spec.install.cadvisor, files=render.cadvisor_files(spec, node), user="root",
        data_dir=None, ready=f"curl -sf http://{node.address}:8080/healthz >/dev/null",
        ready_state="journalctl -u cadvisor -n 20 --no-pager")


def _loadbalancer(spec: ClusterSpec, node: Node, servers: list[Node]) -> tuple[install.Agent, install.Agent]:
    """The front balancer (on the LB) or, on a client in two-tier mode, its backend balancer."""
    if node.role is Role.CLIENT:
        nginx_files, template_files = render.backend_files(spec, node)
        health = f"http://{node.address}:{BACKEND_PORT}/health"
    else:
        nginx_files, template_files = render.loadbalancer_files(spec, node, servers)
        health = f"http://{node.address}/health"
    nginx = install.Agent(
        product="nginx", pin=None, files=nginx_files, user="root", data_dir=None, packages=("nginx",),
        check="nginx -t -q", ready=f"curl -sf {health} >/dev/null",
        ready_state="nginx -t; journalctl -u nginx -n 20 --no-pager")
    consul_template = _with_secret_files(spec, install.Agent(
        product="consul-template", pin=spec.install.consul_template, files=template_files, user="root",
        data_dir=None, ready="[ -e /etc/nginx/conf.d/services.conf ]",
        ready_state="journalctl -u consul-template -n 20 --no-pager"), node)
    return nginx, consul_template


def _binary(machine: Machine, spec: ClusterSpec, pin: BinaryPin | None,
            local_path: str | None) -> remote.CopyToRemote | None:
    """With the `upload` source, copy the controller's binary to the machine's staging dir."""
    if pin is None or spec.install.source != "upload" or local_path is None:
        return None
    return remote.CopyToRemote(
        f"{machine.node.name}-{pin.product}-upload",
        connection=machine.connection,
        source=pulumi.FileAsset(local_path),
        remote_path=install.staged_path(pin),
        triggers=[pin.sha256],
        opts=pulumi.ResourceOptions(parent=machine.resource),
    )


def _restarts(node: Node, servers: list[Node]) -> list[install.Restart]:
    """How the roll step of NODE restarts its Consul and Nomad agents, and what healthy means:
    on a server, the servers' autopilot reports every server healthy; elsewhere, the agent
    works and every Consul check of the machine passes again."""
    nomad_url = nomad_api(node)
    consul_leader = LEADER.format(url=CONSUL_URL)
    if node.role is Role.SERVER:
        count = len(servers)
        return [
            install.Restart(
                "consul", f"{consul_leader} && servers_healthy {CONSUL_URL} {count}",
                "consul operator raft list-peers; journalctl -u consul -n 20 --no-pager",
                leads=f"[ \"$(api {CONSUL_URL}/v1/status/leader)\" = '\"{node.address}:8300\"' ]"),
            install.Restart(
                "nomad", f"{LEADER.format(url=nomad_url)} && servers_healthy {nomad_url} {count}",
                f"NOMAD_ADDR={nomad_url} nomad server members; journalctl -u nomad -n 20 --no-pager",
                leads=f"[ \"$(api {nomad_url}/v1/status/leader)\" = '\"{node.address}:4647\"' ]"),
        ]
    restarts = [install.Restart("consul", f"{consul_leader} && checks_passing $checks",
                                "consul members; local_checks; journalctl -u consul -n 20 --no-pager")]
    if node.role is Role.CLIENT:
        restarts.append(install.Restart(
            "nomad", f"{_nomad_node_ready(nomad_url)} && checks_passing $checks",
            f"NOMAD_ADDR={nomad_url} nomad node status -self; local_checks; "
            "journalctl -u nomad -n 20 --no-pager"))
    return restarts


def _nomad_node_ready(url: str) -> str:
    return f"NOMAD_ADDR={url} nomad node status -self -short 2>/dev/null | grep -q '^Status *= ready'"


def _leave(agent: install.Agent, node: Node, servers: list[Node]) -> list[str]:
    """Lines that take an agent out of the cluster before it is removed: a Nomad client is
    drained (its allocations move to the other clients first) and purged from the servers'
    node list; a Consul agent leaves. Best effort: a cluster that is already broken must not
    stop its own removal."""
    leave = ['if timeout 30 consul leave >/dev/null 2>&1; then echo "consul: left the cluster"; '
             'else echo "warning: consul did not leave gracefully" >&2; fi']
    if agent.product == "consul" and node.role is Role.SERVER:
        # A server leaves a cluster that lives on. When the whole cluster goes (every client
        # has left already), the servers just stop: leaving together, they would wait on each
        # other for quorum for half a minute, for nothing.
        return [install.USE_API, f"if {_alive('client', 1)}; then", *leave, "else",
                'echo "consul: no client left; this server stops without a leave"', "fi"]
    if agent.product == "consul":
        return [install.USE_API, *leave]
    if agent.product == "nomad" and node.role is Role.CLIENT:
        url = nomad_api(node)
        # Nomad's API has a purge, its CLI has none; any server will do.
        purge = " || ".join(f'api -X PUT "{nomad_api(s)}/v1/node/$id/purge" >/dev/null'
                            for s in servers)
        return [
            install.USE_API,
            "if systemctl is-active --quiet nomad; then",
            f"  id=$(NOMAD_ADDR={url} nomad node status -self -t '{{{{.ID}}}}' 2>/dev/null || true)",
            f"  if NOMAD_ADDR={url} timeout 300 nomad node drain -self -enable -yes "
            f"-deadline {DRAIN_DEADLINE} >/dev/null 2>&1; then",
            '    echo "nomad: node drained"',
            "  else",
            '    echo "warning: the drain of this Nomad node did not finish; stopping it anyway" >&2',
            "  fi",
            "  systemctl stop nomad",
            f'  if [ -n "$id" ] && {{ {purge}; }}; then echo "nomad: node purged"; fi',
            "fi",
        ]
    return []


def _agent_step(machine: Machine, spec: ClusterSpec, agent: install.Agent,
                uploads: Mapping[str, str], after: Sequence[pulumi.Resource],
                servers: list[Node], secrets: Mapping[str, pulumi.Output[str]]) -> remote.Command:
    """Install the agent (create), converge it (update: Consul and Nomad only staged for the
    roll), take it out of the cluster and remove it (delete). Its secret files, made from
    SECRETS (cluster/secrets.py's outputs), go on stdin; their hash joins the triggers."""
    upload = _binary(machine, spec, agent.pin, uploads.get(agent.product))
    binary = f"{agent.pin.version} {agent.pin.sha256}" if agent.pin else ""
    digest = hashlib.sha256(f"{binary}\0{render.digest(agent.files)}".encode()).hexdigest()
    triggers: list[object] = [digest]
    stdin = None
    if agent.secrets:
        node = machine.node
        stdin = pulumi.Output.all(**secrets).apply(
            lambda values: install.secrets_bundle(render.secret_files(spec, agent.product, node, values)))
        triggers.append(stdin.apply(lambda b: hashlib.sha256(b.encode()).hexdigest()))
    return remote.Command(
        f"{machine.node.name}-{agent.product}",
        connection=machine.connection,
        create=install.install_script(agent, spec.install),
        update=install.install_script(agent, spec.install, restart=agent.product not in ROLLED),
        delete=install.uninstall_script(agent.product, _leave(agent, machine.node, servers)),
        stdin=stdin,
        triggers=triggers,
        opts=pulumi.ResourceOptions(parent=machine.resource,
                                    depends_on=[*after, *([upload] if upload else [])]),
    )


def _roll(name: str, machine: Machine, servers: list[Node], staged: Sequence[remote.Command],
          after: Sequence[pulumi.Resource], defer_leader: bool = False) -> remote.Command:
    """A machine's turn in the rolling restart: restarts what its install steps STAGED, after
    the turn before it (AFTER). It runs again whenever one of those steps changes."""
    script = install.roll_script(machine.node.name, _restarts(machine.node, servers), defer_leader,
                                 ROLL_PRELUDE)
    return remote.Command(
        name, connection=machine.connection, create=script, update=script,
        triggers=[s.triggers for s in staged],
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=[*staged, *after]),
    )


def _gate(name: str, machine: Machine, script: str, after: Sequence[pulumi.Resource],
          triggers: Sequence[object]) -> remote.Command:
    """A check that waits until a tier works; it runs again when its triggers change."""
    return remote.Command(
        name, connection=machine.connection, create=script, update=script, triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=list(after)),
    )


def _alive(role: str, count: int) -> str:
    return f'[ "$(consul members -status=alive 2>/dev/null | awk \'$4=="{role}"\' | wc -l)" -ge {count} ]'


@dataclass
class Agents:
    """The steps agents() made, and (with ACLs) the job resources' Nomad token."""

    steps: list[pulumi.CustomResource]
    nomad_jobs_token: pulumi.Output[str] | None = None


def agents(spec: ClusterSpec, machines: list[Machine], identity: Mapping[str, pulumi.Resource],
           uploads: Mapping[str, str],
           secrets: Mapping[str, Mapping[str, pulumi.Output[str]]] | None = None) -> Agents:
    """Every agent install, gate, ACL and roll step, in dependency order. SECRETS: per
    machine, the secret values its files take (program.make_secrets; none with security off)."""
    servers = [m for m in machines if m.node.role is Role.SERVER]
    others = [m for m in machines if m.node.role is not Role.SERVER]
    server_nodes = [m.node for m in servers]
    root = servers[0]
    steps: list[pulumi.CustomResource] = []

    values = {name: dict(v) for name, v in (secrets or {}).items()}

    def step(m: Machine, agent: install.Agent, after: Sequence[pulumi.Resource]) -> remote.Command:
        return _agent_step(m, spec, agent, uploads, after, server_nodes, values.get(m.node.name, {}))

    consul_servers = [step(m, _consul_agent(spec, m.node, server_nodes), [identity[m.node.name]])
                      for m in servers]
    consul_leader = LEADER.format(url=CONSUL_URL)
    consul_gate = _gate("consul-servers-ready", root, install.gate_script(
        "the Consul servers", f"{consul_leader} && {_alive('server', len(servers))}",
        "consul members; consul operator raft list-peers"), consul_servers,
        [s.triggers for s in consul_servers])
    steps += [*consul_servers, consul_gate]
    consul_ready: list[pulumi.Resource] = [consul_gate]
    if spec.security.acl:
        consul_acl = acl.consul_step(spec, root, [m.node for m in machines], values, [consul_gate])
        consul_ready = [consul_acl]
        steps.append(consul_acl)
    nomad_servers = [step(m, _nomad_agent(spec, m.node, server_nodes), consul_ready) for m in servers]
    nomad_url = nomad_api(root.node)
    # Raft's peers, not `nomad server members`: the status endpoints need no ACL token, and
    # Nomad's ACLs are bootstrapped after this gate.
    nomad_gate = _gate("nomad-servers-ready", root, install.gate_script(
        "the Nomad servers",
        f"{LEADER.format(url=nomad_url)} && [ \"$(api {nomad_url}/v1/status/peers | grep -o :4647 "
        f"| wc -l)\" -ge {len(servers)} ]",
        f"api {nomad_url}/v1/status/peers"), nomad_servers,
        [s.triggers for s in nomad_servers])
    steps += [*nomad_servers, nomad_gate]
    nomad_ready: list[pulumi.Resource] = [nomad_gate]
    jobs_token = None
    if spec.security.acl:
        nomad_acl = acl.nomad_step(root, [nomad_gate])
        nomad_ready = [nomad_acl]
        steps.append(nomad_acl)
        tokens = nomad_acl.stdout.apply(acl.parse_nomad_tokens)
        # Secret: the step's stdout is.
        jobs_token = tokens.apply(lambda t: t["jobs"])
        machine_token: pulumi.Output[str] = tokens.apply(lambda t: t["machine"])
        for m in machines:
            if m.node.role is Role.CLIENT:
                values[m.node.name]["nomad_machine_token"] = machine_token

    # The servers' turns: a pass that skips the leader, then (with several servers) the
    # leader's pass.
    turn: list[pulumi.Resource] = [nomad_gate]
    passes = [("roll", len(servers) > 1), *([("roll-leader", False)] if len(servers) > 1 else [])]
    for suffix, defer_leader in passes:
        for m, consul, nomad in zip(servers, consul_servers, nomad_servers, strict=True):
            roll = _roll(f"{m.node.name}-{suffix}", m, server_nodes, [consul, nomad], turn, defer_leader)
            steps.append(roll)
            turn = [roll]

    client_steps: list[remote.Command] = []
    for m in others:
        consul = step(m, _consul_agent(spec, m.node, server_nodes), [identity[m.node.name], *consul_ready])
        staged = [consul]
        client_steps.append(consul)
        if m.node.role is Role.CLIENT:
            nomad = step(m, _nomad_agent(spec, m.node, server_nodes), [consul, *nomad_ready])
            staged.append(nomad)
            client_steps += [nomad, step(m, _cadvisor(spec, m.node), [identity[m.node.name]])]
            if spec.load_balancing == "two-tier":
                nginx, consul_template = _loadbalancer(spec, m.node, server_nodes)
                nginx_step = step(m, nginx, [consul])
                client_steps += [nginx_step, step(m, consul_template, [nginx_step])]
        # Then the load balancer's and the clients' turns, after the servers'.
        roll = _roll(f"{m.node.name}-roll", m, server_nodes, staged, turn)
        client_steps.append(roll)
        turn = [roll]
    clients = [m for m in machines if m.node.role is Role.CLIENT]
    cluster_gate = _gate("cluster-ready", root, install.gate_script(
        "the cluster",
        f"{_alive('server', len(servers))} && {_alive('client', len(others))} && "
        f"[ \"$(NOMAD_ADDR={nomad_url} nomad node status 2>/dev/null | awk 'NR>1 && $NF==\"ready\"' "
        f"| wc -l)\" -ge {len(clients)} ]",
        f"consul members; NOMAD_ADDR={nomad_url} nomad node status"), client_steps,
        # Only the shape of the cluster: a change on one client re-runs that client's steps
        # (each waits for its own agent to work), not this gate.
        [len(servers), len(others), len(clients)])
    steps += [*client_steps, cluster_gate]

    for m in others:
        if m.node.role is Role.LB:
            nginx, consul_template = _loadbalancer(spec, m.node, server_nodes)
            nginx_step = step(m, nginx, [cluster_gate])
            steps += [nginx_step, step(m, consul_template, [nginx_step])]
    return Agents(steps, jobs_token)
