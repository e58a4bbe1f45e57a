"""ACLs for Consul and Nomad: bootstrapped, with a narrow token for each user, idempotently.

Two steps on the root server, each safe to run again (a second run changes nothing):

- `consul-acl`, after the Consul servers' gate. Consul bootstrapped itself with the
  management token of the servers' config (`initial_management`: no bootstrap call). The step
  writes the policies and the tokens whose secrets the program made (cluster/secrets.py):
  each machine's agent token (its node identity, and its own agent API), the Nomad agents'
  token, consul-template's and the read-only status token (`./run status`). A machine that
  left the stack loses its token and policy.
- `nomad-acl`, after the Nomad servers' gate: bootstraps Nomad's ACLs with the management
  token the program made (once; afterwards it checks that the token works), writes the
  policies, and makes (or finds) the machines' token (drain, node status, autopilot), the
  job resources' token and the read-only status token. Nomad makes the secrets of those itself:
  the step prints them, as a secret output that nothing logs, for the clients' install steps,
  the jobs and the stack output `statusNomadToken`.

Secrets reach the steps on stdin and the APIs in files of mode 0600; no secret is ever an
argument of a process (printf and read are shell builtins).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence

import pulumi
from pulumi_command import remote

from cluster.config import ClusterSpec
from cluster.machines import Machine
from cluster.render import render_script
from cluster.topology import Node

# Accessor IDs of the Consul tokens: public, derived from the stack and the token's name, so
# the step finds its tokens again.
_ACCESSORS = uuid.UUID("7d6c1f0e-54b3-4f43-9d1e-6d2c0a1f9b21")

CONSUL_POLICIES = {
    "hashicluster-nomad": ('agent_prefix "" { policy = "read" }\n'
                           'node_prefix "" { policy = "read" }\n'
                           'service_prefix "" { policy = "write" }\n'),
    "hashicluster-consul-template": ('node_prefix "" { policy = "read" }\n'
                                     'service_prefix "" { policy = "read" }\n'),
    # `./run status` (cluster/status): members, nodes, services and their health, the agents'
    # versions, the Raft peers; no key of the KV store.
    "hashicluster-status": ('agent_prefix "" { policy = "read" }\n'
                            'node_prefix "" { policy = "read" }\n'
                            'service_prefix "" { policy = "read" }\n'
                            'operator = "read"\n'
                            'key_prefix "" { policy = "deny" }\n'),
    # DNS (<service>.service.consul through each machine's forwarder): each agent's default
    # token, what Consul answers a DNS query with (and an HTTP request that brings no token).
    "hashicluster-dns": ('node_prefix "" { policy = "read" }\n'
                         'service_prefix "" { policy = "read" }\n'
                         'query_prefix "" { policy = "read" }\n'),
}
NOMAD_POLICIES = {
    # The project's scripts on a machine: node status, drain and purge, autopilot, members.
    "hashicluster-machine": ('node { policy = "write" }\n'
                             'agent { policy = "read" }\n'
                             'operator { policy = "read" }\n'),
    # The job resources (cluster/jobs.py): parse, register, read and stop jobs.
    "hashicluster-jobs": 'namespace "default" { policy = "write" }\nnode { policy = "read" }\n',
    # `./run status` (cluster/status): read only. Jobs and their allocations in every
    # namespace, nodes, members and versions, the Raft peers.
    "hashicluster-status": ('namespace "*" { capabilities = ["list-jobs", "read-job"] }\n'
                            'node { policy = "read" }\n'
                            'agent { policy = "read" }\n'
                            'operator { policy = "read" }\n'),
}
NOMAD_TOKENS = {"machine": "hashicluster-machine", "jobs": "hashicluster-jobs",
                "status": "hashicluster-status"}
UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def node_policy(node: Node) -> tuple[str, str]:
    """A machine's own Consul policy: write to its own agent API (a leave), read the others,
    register the backend balancer (two-tier)."""
    name = node.short_hostname
    rules = (f'agent "{name}" {{ policy = "write" }}\nnode_prefix "" {{ policy = "read" }}\n'
             'service "hashicluster-backend" { policy = "write" }\n')
    return f"hashicluster-node-{name}", rules


def accessor(stack: str, name: str) -> str:
    return str(uuid.uuid5(_ACCESSORS, f"{stack}/{name}"))


def _policy_body(name: str, rules: str) -> str:
    """A policy as both APIs take it (JSON)."""
    return json.dumps({"Name": name, "Description": "hashicluster", "Rules": rules}, separators=(",", ":"))


def consul_script(spec: ClusterSpec, nodes: Sequence[Node]) -> str:
    """The consul-acl step (templates/steps/consul-acl.sh.j2): policies and tokens; stdin has
    `NAME SECRET` lines (node tokens by short host name, `nomad`, `consul-template`, `status`,
    `dns`)."""
    policies = dict(CONSUL_POLICIES)
    tokens: list[tuple[str, str, dict[str, object]]] = [
        ("nomad", "hashicluster nomad agents", {"Policies": [{"Name": "hashicluster-nomad"}]}),
        ("consul-template", "hashicluster consul-template",
         {"Policies": [{"Name": "hashicluster-consul-template"}]}),
        ("status", "hashicluster status", {"Policies": [{"Name": "hashicluster-status"}]}),
        ("dns", "hashicluster dns", {"Policies": [{"Name": "hashicluster-dns"}]})]
    for node in nodes:
        policy, rules = node_policy(node)
        policies[policy] = rules
        tokens.append((node.short_hostname, f"hashicluster node {node.short_hostname}", {
            "Policies": [{"Name": policy}],
            "NodeIdentities": [{"NodeName": node.short_hostname, "Datacenter": spec.datacenter}]}))
    bodies = []
    for name, description, fields in tokens:
        # Everything but the secret, which the script adds from stdin.
        body = {"AccessorID": accessor(spec.stack, name), "Description": description, **fields}
        bodies.append((name, body["AccessorID"], json.dumps(body, separators=(",", ":"))))
    return render_script("consul-acl.sh.j2",
                         policies={name: _policy_body(name, rules) for name, rules in policies.items()},
                         tokens=bodies, nodes=[n.short_hostname for n in nodes])


def consul_stdin(nodes: Sequence[Node],
                 values: Mapping[str, Mapping[str, pulumi.Output[str]]]) -> pulumi.Output[str]:
    """`NAME SECRET` lines: each machine's agent token, Nomad's, consul-template's, the
    read-only status token's and the DNS token's."""
    any_node = values[nodes[0].name]
    pairs = {n.short_hostname: values[n.name]["consul_agent_token"] for n in nodes}
    pairs["nomad"] = any_node["nomad_consul_token"]
    pairs["consul-template"] = any_node["consul_template_token"]
    pairs["status"] = any_node["consul_status_token"]
    pairs["dns"] = any_node["consul_dns_token"]
    return pulumi.Output.all(**pairs).apply(lambda p: "".join(f"{k} {v}\n" for k, v in p.items()))


def nomad_script(root: Node) -> str:
    """The nomad-acl step (templates/steps/nomad-acl.sh.j2): bootstrap (once) with the
    management token of the servers' /etc/nomad.d/api.token, policies, and `KIND SECRET` lines
    on stdout for NOMAD_TOKENS."""
    return render_script("nomad-acl.sh.j2", address=root.address,
                         policies={name: _policy_body(name, rules) for name, rules in NOMAD_POLICIES.items()},
                         tokens=list(NOMAD_TOKENS.items()))


def parse_nomad_tokens(stdout: str) -> dict[str, str]:
    """{kind: secret} from the nomad-acl step's stdout (`KIND SECRET` lines)."""
    tokens = {}
    for line in stdout.splitlines():
        kind, _, secret = line.partition(" ")
        if kind in NOMAD_TOKENS and UUID.fullmatch(secret.strip()):
            tokens[kind] = secret.strip()
    missing = [k for k in NOMAD_TOKENS if k not in tokens]
    if missing:
        # Never the output itself: it could hold a secret.
        raise ValueError(f"the nomad-acl step printed no valid Nomad token for {', '.join(missing)}; "
                         "see its stderr (pulumi stack export) and `nomad acl token list` on the root server")
    return tokens


def consul_step(spec: ClusterSpec, root: Machine, nodes: Sequence[Node],
                values: Mapping[str, Mapping[str, pulumi.Output[str]]],
                after: Sequence[pulumi.Resource]) -> remote.Command:
    stdin = consul_stdin(nodes, values)
    script = root.as_root(consul_script(spec, nodes))
    return remote.Command(
        "consul-acl", connection=root.connection, create=script, update=script, stdin=stdin,
        # The machines and the secrets: a new machine, or new secrets, run it again.
        triggers=[stdin.apply(lambda s: hashlib.sha256(s.encode()).hexdigest())],
        opts=pulumi.ResourceOptions(parent=root.resource, depends_on=list(after)),
    )


def nomad_step(root: Machine, after: Sequence[pulumi.Resource]) -> remote.Command:
    script = root.as_root(nomad_script(root.node))
    return remote.Command(
        "nomad-acl", connection=root.connection, create=script, update=script,
        # Its stdout holds the tokens' secrets: never logged, kept secret in the state.
        logging=remote.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=root.resource, depends_on=list(after),
                                    additional_secret_outputs=["stdout"]),
    )
