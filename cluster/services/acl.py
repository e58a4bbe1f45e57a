"""ACLs for Consul and Nomad: bootstrapped, with a narrow token for each user, idempotently.

Two steps on the root server, each safe to run again (a second run changes nothing):

- `consul-acl`, after the Consul servers' gate. Consul bootstrapped itself with the
  management token of the servers' config (`initial_management`: no bootstrap call). The step
  writes the policies and the tokens whose secrets the program made (cluster/secrets.py):
  each machine's agent token (its node identity, and its own agent API), the Nomad agents'
  token and consul-template's. A machine that left the stack loses its token and policy.
- `nomad-acl`, after the Nomad servers' gate: bootstraps Nomad's ACLs with the management
  token the program made (once; afterwards it checks that the token works), writes the
  policies, and makes (or finds) the machines' token (drain, node status, autopilot) and the
  job resources' token. Nomad makes the secrets of those two itself: the step prints them, as a
  secret output that nothing logs, for the clients' install steps and the jobs.

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

from cluster import install
from cluster.config import ClusterSpec
from cluster.machines import Machine
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
}
NOMAD_POLICIES = {
    # The project's scripts on a machine: node status, drain and purge, autopilot, members.
    "hashicluster-machine": ('node { policy = "write" }\n'
                             'agent { policy = "read" }\n'
                             'operator { policy = "read" }\n'),
    # The job resources (cluster/jobs.py): parse, register, read and stop jobs.
    "hashicluster-jobs": 'namespace "default" { policy = "write" }\nnode { policy = "read" }\n',
}
NOMAD_TOKENS = {"machine": "hashicluster-machine", "jobs": "hashicluster-jobs"}
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


def consul_script(spec: ClusterSpec, nodes: Sequence[Node]) -> str:
    """The consul-acl step: policies and tokens; stdin has `NAME SECRET` lines (node tokens
    by short host name, `nomad`, `consul-template`)."""
    policies = dict(CONSUL_POLICIES)
    tokens = [("nomad", "hashicluster nomad agents", {"Policies": [{"Name": "hashicluster-nomad"}]}),
              ("consul-template", "hashicluster consul-template",
               {"Policies": [{"Name": "hashicluster-consul-template"}]})]
    for node in nodes:
        policy, rules = node_policy(node)
        policies[policy] = rules
        tokens.append((node.short_hostname, f"hashicluster node {node.short_hostname}", {
            "Policies": [{"Name": policy}],
            "NodeIdentities": [{"NodeName": node.short_hostname, "Datacenter": spec.datacenter}]}))
    names = " ".join(n.short_hostname for n in nodes)
    lines = [
        "set -eu",
        install.USE_API,
        *install.wait_for("Consul's ACL system (the management token)",
                          'api "$CONSUL_HTTP_ADDR/v1/acl/token/self" >/dev/null', "consul members", 120),
        CONSUL_FUNCTIONS,
    ]
    for name, rules in policies.items():
        lines.append(f"policy {name} {install.q(json.dumps(rules))}")
    for name, description, fields in tokens:
        body = json.dumps(fields, separators=(",", ":"))[1:-1]
        lines.append(f"token {name} {accessor(spec.stack, name)} {install.q(description)} {install.q(body)}")
    lines += [f'echo "consul: {len(policies)} policies, {len(tokens)} tokens"',
              f'nodes=" {names} "', CONSUL_PRUNE]
    return "\n".join(lines) + "\n"


CONSUL_FUNCTIONS = r"""fail() { echo "error: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The secrets, from stdin into files of mode 0600.
while read -r key secret; do printf %s "$secret" > "$tmp/secret-$key"; done
C=$CONSUL_HTTP_ADDR
policy() {  # NAME RULES: create the policy, or bring it up to date
  printf '{"Name":"%s","Description":"hashicluster","Rules":%s}' "$1" "$2" > "$tmp/policy.json"
  id=$(api "$C/v1/acl/policy/name/$1" 2>/dev/null | sed -n 's/.*"ID":"\([^"]*\)".*/\1/p') || true
  api -X PUT --data-binary @"$tmp/policy.json" "$C/v1/acl/policy${id:+/$id}" >/dev/null \
    || fail "consul: cannot write the ACL policy $1"
}
token() {  # NAME ACCESSOR DESCRIPTION FIELDS: NAME's token with its secret, made or brought up to date
  [ -s "$tmp/secret-$1" ] || fail "consul: no secret for the token $1 on stdin"
  printf '{"AccessorID":"%s","SecretID":"%s","Description":"%s",%s}' \
    "$2" "$(cat "$tmp/secret-$1")" "$3" "$4" > "$tmp/token.json"
  if api "$C/v1/acl/token/$2" >/dev/null 2>&1; then path=/$2; else path=; fi
  api -X PUT --data-binary @"$tmp/token.json" "$C/v1/acl/token$path" >/dev/null \
    || fail "consul: cannot write the ACL token $1"
}"""

# Machines that left the stack ($nodes: those of the stack now): their token and policy go.
CONSUL_PRUNE = r"""consul acl token list \
  | awk '/^AccessorID:/{a=$2} /^Description: *hashicluster node /{print a, $NF}' \
  | while read -r a n; do
      case $nodes in *" $n "*) ;; *)
        consul acl token delete -id "$a" >/dev/null && echo "consul: removed the token of $n";;
      esac
    done
consul acl policy list | awk '/^hashicluster-node-/{n=$1; sub(/:$/, "", n); print n}' \
  | while read -r p; do
      case $nodes in *" ${p#hashicluster-node-} "*) ;; *)
        consul acl policy delete -name "$p" >/dev/null && echo "consul: removed the policy $p";;
      esac
    done"""


def consul_stdin(nodes: Sequence[Node],
                 values: Mapping[str, Mapping[str, pulumi.Output[str]]]) -> pulumi.Output[str]:
    """`NAME SECRET` lines: each machine's agent token, Nomad's and consul-template's."""
    any_node = values[nodes[0].name]
    pairs = {n.short_hostname: values[n.name]["consul_agent_token"] for n in nodes}
    pairs["nomad"] = any_node["nomad_consul_token"]
    pairs["consul-template"] = any_node["consul_template_token"]
    return pulumi.Output.all(**pairs).apply(lambda p: "".join(f"{k} {v}\n" for k, v in p.items()))


def nomad_script(root: Node) -> str:
    """The nomad-acl step: bootstrap (once) with the management token of the servers'
    /etc/nomad.d/api.token, policies, and `KIND SECRET` lines on stdout for NOMAD_TOKENS."""
    lines = ["set -eu", install.USE_API, f"export NOMAD_ADDR=$NOMAD_SCHEME://{root.address}:4646",
             NOMAD_BOOTSTRAP,
             *install.wait_for("Nomad's ACL system (the management token)",
                               'api "$NOMAD_ADDR/v1/acl/token/self" >/dev/null',
                               "echo 'the bootstrap was refused, or another management token was used'", 60),
             NOMAD_FUNCTIONS]
    for name, rules in NOMAD_POLICIES.items():
        lines.append(f"policy {name} {install.q(json.dumps(rules))}")
    for kind, policy in NOMAD_TOKENS.items():
        lines.append(f"token {kind} {policy} {policy}")
    return "\n".join(lines) + "\n"


# Bootstrap with the program's management token (the servers' /etc/nomad.d/api.token). Nomad
# accepts it once; afterwards the answer is "already done", and the token must simply work.
NOMAD_BOOTSTRAP = r"""fail() { echo "error: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '{"BootstrapSecret":"%s"}' "$(cat /etc/nomad.d/api.token)" > "$tmp/bootstrap.json"
curl -s ${NOMAD_CACERT:+--cacert "$NOMAD_CACERT"} -X POST --data-binary @"$tmp/bootstrap.json" \
  "$NOMAD_ADDR/v1/acl/bootstrap" >/dev/null 2>&1 || true"""

NOMAD_FUNCTIONS = r"""policy() {  # NAME RULES: create the policy, or bring it up to date
  printf '{"Name":"%s","Description":"hashicluster","Rules":%s}' "$1" "$2" > "$tmp/policy.json"
  api -X POST --data-binary @"$tmp/policy.json" "$NOMAD_ADDR/v1/acl/policy/$1" >/dev/null \
    || fail "nomad: cannot write the ACL policy $1"
}
token() {  # KIND NAME POLICY: print `KIND SECRET` of the token NAME, made if missing
  a=$(nomad acl token list -t "{{range .}}{{if eq .Name \"$2\"}}{{.AccessorID}}{{end}}{{end}}")
  [ -n "$a" ] || a=$(nomad acl token create -name="$2" -policy="$3" -t "{{.AccessorID}}")
  [ -n "$a" ] || fail "nomad: cannot make the ACL token $2"
  echo "$1 $(api "$NOMAD_ADDR/v1/acl/token/$a" | sed -n 's/.*"SecretID":"\([^"]*\)".*/\1/p')"
}"""


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
    script = consul_script(spec, nodes)
    return remote.Command(
        "consul-acl", connection=root.connection, create=script, update=script, stdin=stdin,
        # The machines and the secrets: a new machine, or new secrets, run it again.
        triggers=[stdin.apply(lambda s: hashlib.sha256(s.encode()).hexdigest())],
        opts=pulumi.ResourceOptions(parent=root.resource, depends_on=list(after)),
    )


def nomad_step(root: Machine, after: Sequence[pulumi.Resource]) -> remote.Command:
    script = nomad_script(root.node)
    return remote.Command(
        "nomad-acl", connection=root.connection, create=script, update=script,
        # Its stdout holds the tokens' secrets: never logged, kept secret in the state.
        logging=remote.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=root.resource, depends_on=list(after),
                                    additional_secret_outputs=["stdout"]),
    )
