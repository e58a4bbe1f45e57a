"""Every service on every machine, and the gates between the tiers.

Order: Consul servers -> (gate: leader, all servers alive) -> Nomad servers -> (gate) ->
Consul clients on the load balancer and the clients, Nomad clients and cAdvisor on the
clients -> (gate: every member alive, every Nomad node ready) -> the load balancer's nginx
and consul-template. Each install is one remote Command per machine whose `triggers` carry
the hash of what it installs, so a change re-runs exactly that step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import pulumi
from pulumi_command import remote

from cluster import install, render
from cluster.config import BinaryPin, ClusterSpec
from cluster.machines import Machine
from cluster.topology import Node, Role

LEADER = "curl -sf {url}/v1/status/leader | grep -q :"


def _consul_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    return install.Agent(
        product="consul", pin=spec.install.consul, files=render.consul_files(spec, node, servers),
        user="consul", data_dir="/opt/consul",
        # Server or client, the agent is working once it knows the cluster's leader.
        ready=LEADER.format(url="http://127.0.0.1:8500"),
        ready_state="consul members; journalctl -u consul -n 20 --no-pager")


def _nomad_agent(spec: ClusterSpec, node: Node, servers: list[Node]) -> install.Agent:
    url = f"http://{node.address}:4646"
    if node.role is Role.SERVER:
        ready = LEADER.format(url=url)
    else:
        ready = f"NOMAD_ADDR={url} nomad node status -self -short 2>/dev/null | grep -q '^Status *= ready'"
    return install.Agent(
        product="nomad", pin=spec.install.nomad, files=render.nomad_files(spec, node, servers),
        user="nomad" if node.role is Role.SERVER else "root", data_dir="/opt/nomad", ready=ready,
        ready_state=f"NOMAD_ADDR={url} nomad agent-info | head -40; journalctl -u nomad -n 20 --no-pager")


def _cadvisor(spec: ClusterSpec, node: Node) -> install.Agent:
    return install.Agent(
        product="cadvisor", pin=spec.install.cadvisor, files=render.cadvisor_files(node), user="root",
        data_dir=None, ready=f"curl -sf http://{node.address}:8080/healthz >/dev/null",
        ready_state="journalctl -u cadvisor -n 20 --no-pager")


def _loadbalancer(spec: ClusterSpec, node: Node, servers: list[Node]) -> tuple[install.Agent, install.Agent]:
    nginx_files, template_files = render.loadbalancer_files(node, servers)
    nginx = install.Agent(
        product="nginx", pin=None, files=nginx_files, user="root", data_dir=None, packages=("nginx",),
        check="nginx -t -q", ready=f"curl -sf http://{node.address}/health >/dev/null",
        ready_state="nginx -t; journalctl -u nginx -n 20 --no-pager")
    consul_template = install.Agent(
        product="consul-template", pin=spec.install.consul_template, files=template_files, user="root",
        data_dir=None, ready="[ -e /etc/nginx/conf.d/services.conf ]",
        ready_state="journalctl -u consul-template -n 20 --no-pager")
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


def _agent_step(machine: Machine, spec: ClusterSpec, agent: install.Agent,
                uploads: Mapping[str, str], after: Sequence[pulumi.Resource]) -> remote.Command:
    upload = _binary(machine, spec, agent.pin, uploads.get(agent.product))
    script = install.install_script(agent, spec.install)
    binary = f"{agent.pin.version} {agent.pin.sha256}" if agent.pin else ""
    digest = hashlib.sha256(f"{binary}\0{render.digest(agent.files)}".encode()).hexdigest()
    return remote.Command(
        f"{machine.node.name}-{agent.product}",
        connection=machine.connection,
        create=script,
        update=script,
        delete=install.uninstall_script(agent.product),
        triggers=[digest],
        opts=pulumi.ResourceOptions(parent=machine.resource,
                                    depends_on=[*after, *([upload] if upload else [])]),
    )


def _gate(name: str, machine: Machine, script: str, after: Sequence[remote.Command],
          triggers: Sequence[object]) -> remote.Command:
    """A check that waits until a tier works; it runs again when its triggers change."""
    return remote.Command(
        name, connection=machine.connection, create=script, update=script, triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=machine.resource, depends_on=list(after)),
    )


def _alive(role: str, count: int) -> str:
    return f'[ "$(consul members -status=alive 2>/dev/null | awk \'$4=="{role}"\' | wc -l)" -ge {count} ]'


def agents(spec: ClusterSpec, machines: list[Machine], identity: Mapping[str, pulumi.Resource],
           uploads: Mapping[str, str]) -> list[pulumi.CustomResource]:
    """Every agent install and gate, in dependency order. Returns them all."""
    servers = [m for m in machines if m.node.role is Role.SERVER]
    others = [m for m in machines if m.node.role is not Role.SERVER]
    server_nodes = [m.node for m in servers]
    root = servers[0]
    steps: list[pulumi.CustomResource] = []

    consul_servers = [_agent_step(m, spec, _consul_agent(spec, m.node, server_nodes), uploads,
                                  [identity[m.node.name]]) for m in servers]
    consul_leader = LEADER.format(url="http://127.0.0.1:8500")
    consul_gate = _gate("consul-servers-ready", root, install.gate_script(
        "the Consul servers", f"{consul_leader} && {_alive('server', len(servers))}",
        "consul members; consul operator raft list-peers"), consul_servers,
        [s.triggers for s in consul_servers])
    nomad_servers = [_agent_step(m, spec, _nomad_agent(spec, m.node, server_nodes), uploads,
                                 [consul_gate]) for m in servers]
    nomad_url = f"http://{root.node.address}:4646"
    nomad_gate = _gate("nomad-servers-ready", root, install.gate_script(
        "the Nomad servers",
        f"{LEADER.format(url=nomad_url)} && [ \"$(NOMAD_ADDR={nomad_url} nomad server members 2>/dev/null "
        f"| awk 'NR>1 && $4==\"alive\"' | wc -l)\" -ge {len(servers)} ]",
        f"NOMAD_ADDR={nomad_url} nomad server members"), nomad_servers,
        [s.triggers for s in nomad_servers])
    steps += [*consul_servers, consul_gate, *nomad_servers, nomad_gate]

    client_steps: list[remote.Command] = []
    for m in others:
        consul = _agent_step(m, spec, _consul_agent(spec, m.node, server_nodes), uploads,
                             [identity[m.node.name], consul_gate])
        client_steps.append(consul)
        if m.node.role is Role.CLIENT:
            client_steps.append(_agent_step(m, spec, _nomad_agent(spec, m.node, server_nodes), uploads,
                                            [consul, nomad_gate]))
            client_steps.append(_agent_step(m, spec, _cadvisor(spec, m.node), uploads,
                                            [identity[m.node.name]]))
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
            nginx_step = _agent_step(m, spec, nginx, uploads, [cluster_gate])
            steps += [nginx_step, _agent_step(m, spec, consul_template, uploads, [nginx_step])]
    return steps
