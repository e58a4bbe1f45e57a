"""Pure rendering, from templates/ with jinja2: the config files of each agent on each node,
and the shell scripts of the steps (templates/steps/).

Consul and Nomad merge every file in their config directory, so each concern has a small
template of its own (base, server, client) and a node gets only the files of its roles:
FILES is the one table of them (path, owner, mode, secret or not, on which nodes).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from cluster.config import BACKEND_PORT, ClusterSpec
from cluster.topology import REGISTRY_PORT, Node, Role, registry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # HCL and unit files, not HTML
)


# The steps' scripts: blocks on lines of their own leave no blank line; `| sh` quotes a value
# for the shell.
_scripts = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_scripts.filters["sh"] = shlex.quote


@dataclass(frozen=True)
class File:
    """One file to put on a machine."""

    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"


def render_template(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def render_script(template: str, **values: Any) -> str:
    """A step's script from templates/steps/: Python passes values, the template is the shell."""
    return _scripts.get_template(f"steps/{template}").render(**values)


@dataclass(frozen=True)
class FileContext:
    """What a file's content is made from: the stack, the node, the servers, and (secret files
    only) the secret values."""

    spec: ClusterSpec
    node: Node
    servers: list[Node]
    values: Mapping[str, str]


def _consul_ctx(c: FileContext) -> dict[str, Any]:
    return {"datacenter": c.spec.datacenter, "node": c.node, "servers": c.servers,
            "server": c.node.role is Role.SERVER, "tls": c.spec.security.tls, "acl": c.spec.security.acl}


def _nomad_ctx(c: FileContext) -> dict[str, Any]:
    interface = f'{{{{ GetAllInterfaces | include \\"address\\" \\"{c.node.address}\\" | attr \\"name\\" }}}}'
    return {"datacenter": c.spec.datacenter, "region": c.spec.region, "node": c.node, "servers": c.servers,
            "server": c.node.role is Role.SERVER,
            "settings": c.spec.client_settings.get(c.node.name, c.spec.default_client),
            "interface_of_address": interface, "tls": c.spec.security.tls, "raw_exec": c.spec.raw_exec}


def _balancer_ctx(c: FileContext) -> dict[str, Any]:
    """The front balancer (on the LB: routes to every instance, or to the backend balancers in
    two-tier mode) or a client's backend balancer (two-tier: NODE's address, port
    BACKEND_PORT, the instances on NODE only)."""
    if c.node.role is Role.CLIENT:
        return {"node": c.node, "consul_ui_upstreams": [], "tls": c.spec.security.tls,
                "datacenter": c.spec.datacenter, "listen": f"{c.node.address}:{BACKEND_PORT}",
                "backend_node": c.node.short_hostname}
    port = 8501 if c.spec.security.tls else 8500
    return {"node": c.node, "consul_ui_upstreams": [f"{s.address}:{port}" for s in c.servers],
            "tls": c.spec.security.tls, "datacenter": c.spec.datacenter}


def _ctmpl(name: str) -> Callable[[FileContext], str]:
    """consul-template's own (Go) templates, copied as they are: generic, they route every
    service tagged `lb` to /<service>/, on its instances (one-tier), on the backend balancers
    of the clients that run it (two-tier: two-tier-*.ctmpl), or on the node's own instances
    (a backend balancer: backend-*.ctmpl)."""
    def content(c: FileContext) -> str:
        if c.node.role is Role.CLIENT:
            prefix = "backend-"
        else:
            prefix = "two-tier-" if c.spec.load_balancing == "two-tier" else ""
        return (TEMPLATES / "lb" / f"{prefix}{name}.ctmpl").read_text()
    return content


def _from(template: str, ctx: Callable[[FileContext], dict[str, Any]]) -> Callable[[FileContext], str]:
    return lambda c: render_template(template, **ctx(c))


def _backend_service(c: FileContext) -> str:
    """The backend balancer as a Consul service (two-tier); with ACLs it carries the node's
    token, which may register it, and is a secret file."""
    return render_template("consul/backend.hcl.j2", node=c.node, port=BACKEND_PORT,
                           token=c.values.get("consul_agent_token", ""))


def _acl_hcl(c: FileContext) -> str:
    return render_template("consul/acl.hcl.j2", server=c.node.role is Role.SERVER, values=c.values)


def _api_token(product: str) -> Callable[[FileContext], str]:
    """The token the project's scripts on the machine use (see consul/api.env.j2): on servers
    the management token, elsewhere Consul's node token or Nomad's machine token."""
    def content(c: FileContext) -> str:
        return _token(product, c) + "\n"
    return content


def _api_header(product: str) -> Callable[[FileContext], str]:
    header = "X-Consul-Token" if product == "consul" else "X-Nomad-Token"
    return lambda c: f"{header}: {_token(product, c)}\n"


def _token(product: str, c: FileContext) -> str:
    server = c.node.role is Role.SERVER
    if product == "consul":
        return c.values["consul_management_token" if server else "consul_agent_token"]
    return c.values["nomad_management_token" if server else "nomad_machine_token"]


Condition = Callable[[ClusterSpec, Node], bool]


def _always(spec: ClusterSpec, node: Node) -> bool:
    return True


def _tls(spec: ClusterSpec, node: Node) -> bool:
    return spec.security.tls


def _acl(spec: ClusterSpec, node: Node) -> bool:
    return spec.security.acl


def _no_acl(spec: ClusterSpec, node: Node) -> bool:
    return not spec.security.acl


def _gossip(spec: ClusterSpec, node: Node) -> bool:
    return spec.security.gossip


def _server(spec: ClusterSpec, node: Node) -> bool:
    return node.role is Role.SERVER


def _not_server(spec: ClusterSpec, node: Node) -> bool:
    return node.role is not Role.SERVER


def _both(*conditions: Condition) -> Condition:
    return lambda spec, node: all(c(spec, node) for c in conditions)


def _backend(spec: ClusterSpec, node: Node) -> bool:
    """A client with a backend balancer (two-tier)."""
    return spec.load_balancing == "two-tier" and node.role is Role.CLIENT


def _balancer(spec: ClusterSpec, node: Node) -> bool:
    """A node with a balancer: the front one, or a client's backend balancer."""
    return node.role is Role.LB or _backend(spec, node)


AGENT = "agent"  # as an owner: the user the product's agent runs as on the node (agent_user)


@dataclass(frozen=True)
class FileRow:
    """One file a product may put on a node: where, whose, which mode, whether it holds a
    secret (then it comes on the install step's stdin, never in a command's text), on which
    nodes (`when`), and its content."""

    product: str
    path: str
    mode: str
    owner: str  # a user name, or AGENT
    secret: bool
    when: Condition
    content: Callable[[FileContext], str]


# How the project's scripts on a machine reach the APIs (sourced; see consul/api.env.j2).
API_ENV = "/etc/consul.d/api.env"
TLS_FILES = ("ca.pem", "agent.pem", "agent-key.pem")


def _plain(product: str, path: str, when: Condition, content: Callable[[FileContext], str],
           mode: str = "0644", owner: str = "root") -> FileRow:
    return FileRow(product, path, mode, owner, False, when, content)


def _secret(product: str, path: str, mode: str, when: Condition,
            content: Callable[[FileContext], str]) -> FileRow:
    return FileRow(product, path, mode, AGENT, True, when, content)


def _value(key: str) -> Callable[[FileContext], str]:
    return lambda c: c.values[key]


def _tls_rows(product: str, tls: str | None = None) -> list[FileRow]:
    """The node's key and certificates (the certificates are not secrets, but come with the key),
    in TLS (default /etc/PRODUCT.d/tls)."""
    tls = tls or f"/etc/{product}.d/tls"
    return [_secret(product, f"{tls}/ca.pem", "0644", _tls, _value("ca_cert_pem")),
            _secret(product, f"{tls}/agent.pem", "0644", _tls, _value("cert_pem")),
            _secret(product, f"{tls}/agent-key.pem", "0600", _tls, _value("key_pem"))]


def _api_rows(product: str) -> list[FileRow]:
    return [_secret(product, f"/etc/{product}.d/api.token", "0600", _acl, _api_token(product)),
            _secret(product, f"/etc/{product}.d/api.header", "0600", _acl, _api_header(product))]


_CONSUL_DIR, _NOMAD_DIR, _UNITS, _TEMPLATE_DIR, _REGISTRY_DIR = (
    "/etc/consul.d", "/etc/nomad.d", "/etc/systemd/system", "/etc/consul-template.d", "/etc/docker/registry")
REGISTRY_TLS = f"{_REGISTRY_DIR}/tls"
# The cluster's CA among the machine's trusted ones (Docker trusts the registry's certificate
# through it; `update-ca-certificates` adds it).
CLUSTER_CA = "/usr/local/share/ca-certificates/hashicluster-ca.crt"
# What the services write while they run (given back at their removal): consul-template's
# renders (and their directory) on a balancer; Docker's key and the CNI configuration; nginx's
# and the registry's state (small: kept as they were before the step). Docker's data is not
# copied: removed if the step found none.
BALANCER_RENDERED = ("/etc/nginx/conf.d/services.conf", "/etc/nginx/locations.d")
DOCKER_RENDERED = ("/etc/docker/key.json", "/etc/cni")
NGINX_RENDERED = ("/var/lib/nginx",)  # its temporary dirs, made at its start
REGISTRY_RENDERED = ("/var/lib/docker-registry",)  # the images pushed to it
DOCKER_DATA = ("/var/lib/docker", "/var/lib/containerd")
DNS_UPSTREAM = "/var/lib/hashicluster/resolv.conf.upstream"  # the resolvers a machine had before dnsmasq
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/hashicluster-consul.conf"  # .consul to dnsmasq


def _lb(spec: ClusterSpec, node: Node) -> bool:
    return node.role is Role.LB


def _docker_ctx(c: FileContext) -> dict[str, Any]:
    return {"registry": registry(c.spec), "tls": c.spec.security.tls, "dns": c.node.address}


def _dnsmasq_ctx(c: FileContext) -> dict[str, Any]:
    return {"node": c.node, "upstream": DNS_UPSTREAM, "containers": c.node.role is Role.CLIENT}


def _registry_ctx(c: FileContext) -> dict[str, Any]:
    return {"node": c.node, "registry": registry(c.spec), "port": REGISTRY_PORT,
            "tls": c.spec.security.tls, "tls_dir": REGISTRY_TLS}

# Every file of every product, in the order the install steps write them: the plain ones in
# the step's text, then the secret ones on its stdin.
FILES: tuple[FileRow, ...] = (
    # Consul, on every node.
    _plain("consul", f"{_CONSUL_DIR}/consul.hcl", _always, _from("consul/consul.hcl.j2", _consul_ctx),
           "0640", AGENT),
    _plain("consul", API_ENV, _always, _from("consul/api.env.j2", _consul_ctx), "0640", AGENT),
    _plain("consul", f"{_CONSUL_DIR}/tls.hcl", _tls, _from("consul/tls.hcl.j2", _consul_ctx), "0640", AGENT),
    # The backend balancer's service: plain without ACLs, a secret with them (it carries a token).
    _plain("consul", f"{_CONSUL_DIR}/backend.hcl", _both(_backend, _no_acl), _backend_service, "0640", AGENT),
    _plain("consul", f"{_CONSUL_DIR}/server.hcl", _server, _from("consul/server.hcl.j2", _consul_ctx),
           "0640", AGENT),
    _plain("consul", f"{_UNITS}/consul.service", _always, _from("systemd/consul.service.j2", _consul_ctx)),
    # Nomad, on the servers and the clients.
    _plain("nomad", f"{_NOMAD_DIR}/nomad.hcl", _always, _from("nomad/nomad.hcl.j2", _nomad_ctx)),
    _plain("nomad", f"{_NOMAD_DIR}/tls.hcl", _tls, _from("nomad/tls.hcl.j2", _nomad_ctx)),
    _plain("nomad", f"{_NOMAD_DIR}/acl.hcl", _acl, _from("nomad/acl.hcl.j2", _nomad_ctx)),
    _plain("nomad", f"{_NOMAD_DIR}/server.hcl", _server, _from("nomad/server.hcl.j2", _nomad_ctx)),
    _plain("nomad", f"{_NOMAD_DIR}/client.hcl", _not_server, _from("nomad/client.hcl.j2", _nomad_ctx)),
    _plain("nomad", f"{_UNITS}/nomad.service", _always, _from("systemd/nomad.service.j2", _nomad_ctx)),
    # cAdvisor, on the clients: port 8080 on the node's address.
    _plain("cadvisor", f"{_UNITS}/cadvisor.service", _always,
           _from("systemd/cadvisor.service.j2", lambda c: {"node": c.node})),
    # Docker, on the clients: the engine's settings (bounded container logs; the registry when
    # it is plain HTTP).
    _plain("docker", "/etc/docker/daemon.json", _always, _from("docker/daemon.json.j2", _docker_ctx)),
    # The DNS forwarder, on every node: *.consul from the local Consul agent.
    _plain("dnsmasq", "/etc/dnsmasq.d/hashicluster.conf", _always,
           _from("dns/dnsmasq.conf.j2", _dnsmasq_ctx)),
    # The cluster's image registry, on the load balancer.
    _plain("docker-registry", f"{_REGISTRY_DIR}/config.yml", _lb,
           _from("registry/config.yml.j2", _registry_ctx)),
    # A balancer: nginx, and consul-template, which writes nginx's routes.
    _plain("nginx", "/etc/nginx/nginx.conf", _balancer, _from("lb/nginx.conf.j2", _balancer_ctx)),
    _plain("consul-template", f"{_TEMPLATE_DIR}/consul-template.hcl", _balancer,
           _from("lb/consul-template.hcl.j2", _balancer_ctx)),
    _plain("consul-template", f"{_TEMPLATE_DIR}/services.ctmpl", _balancer, _ctmpl("services")),
    _plain("consul-template", f"{_TEMPLATE_DIR}/locations.ctmpl", _balancer, _ctmpl("locations")),
    _plain("consul-template", f"{_UNITS}/consul-template.service", _balancer,
           _from("systemd/consul-template.service.j2", _balancer_ctx)),
    # The secrets, and the certificates that go with them.
    *_tls_rows("consul"),
    *_tls_rows("nomad"),
    *_tls_rows("docker-registry", REGISTRY_TLS),
    _secret("docker", CLUSTER_CA, "0644", _tls, _value("ca_cert_pem")),
    _secret("consul", f"{_CONSUL_DIR}/gossip.hcl", "0640", _gossip,
            lambda c: render_template("consul/gossip.hcl.j2", key=c.values["consul_gossip_key"])),
    _secret("nomad", f"{_NOMAD_DIR}/gossip.hcl", "0600", _both(_gossip, _server),
            lambda c: render_template("nomad/gossip.hcl.j2", key=c.values["nomad_gossip_key"])),
    _secret("consul-template", f"{_TEMPLATE_DIR}/token.env", "0600", _acl,
            lambda c: f"CONSUL_HTTP_TOKEN={c.values['consul_template_token']}\n"),
    _secret("consul", f"{_CONSUL_DIR}/acl.hcl", "0640", _acl, _acl_hcl),
    _secret("nomad", f"{_NOMAD_DIR}/consul-token.hcl", "0600", _acl,
            lambda c: render_template("nomad/consul-token.hcl.j2", token=c.values["nomad_consul_token"])),
    *_api_rows("consul"),
    *_api_rows("nomad"),
    _secret("consul", f"{_CONSUL_DIR}/backend.hcl", "0640", _both(_backend, _acl), _backend_service),
)

# Every file that can hold a secret (or comes with one, as the certificates), per product: a
# file of these that a node should not have (a part turned off) goes.
SECRET_FILES: dict[str, tuple[str, ...]] = {
    product: tuple(dict.fromkeys(row.path for row in FILES if row.secret and row.product == product))
    for product in dict.fromkeys(row.product for row in FILES if row.secret)}


def agent_user(product: str, node: Node) -> str:
    """The user a product's agent runs as on NODE: it owns the agent's files."""
    if product in ("consul", "docker-registry"):
        return product
    return "nomad" if product == "nomad" and node.role is Role.SERVER else "root"


def _rows(spec: ClusterSpec, product: str, node: Node, secret: bool) -> list[FileRow]:
    return [row for row in FILES
            if row.product == product and row.secret is secret and row.when(spec, node)]


def _made(row: FileRow, c: FileContext) -> File:
    owner = agent_user(row.product, c.node) if row.owner == AGENT else row.owner
    return File(row.path, row.content(c), row.mode, owner)


def plain_files(spec: ClusterSpec, product: str, node: Node, servers: list[Node]) -> list[File]:
    """The files of PRODUCT on NODE that hold no secret: part of the install step's text."""
    c = FileContext(spec, node, servers, {})
    return [_made(row, c) for row in _rows(spec, product, node, secret=False)]


def consul_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> list[File]:
    """Consul's config directory and unit for one node (server or client agent)."""
    return plain_files(spec, "consul", node, servers)


def nomad_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> list[File]:
    """Nomad's config directory and unit for a server or client node."""
    return plain_files(spec, "nomad", node, servers)


def secret_files(spec: ClusterSpec, product: str, node: Node, values: Mapping[str, str]) -> list[File]:
    """The files of PRODUCT on NODE that hold secrets, from VALUES (the outputs of
    ClusterSecrets and of the node's NodeCredentials), with the certificates that go with
    them. They are never part of a command's text: the install step gets them on stdin."""
    c = FileContext(spec, node, [], values)
    return [_made(row, c) for row in _rows(spec, product, node, secret=True)]


def secret_paths(spec: ClusterSpec, product: str, node: Node) -> list[str]:
    """The paths of secret_files, known without the values."""
    return [row.path for row in _rows(spec, product, node, secret=True)]


def digest(files: list[File]) -> str:
    """A hash over paths, modes, owners and contents: changes when anything installed changes."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.mode}\0{f.owner}\0".encode())
        h.update(f.content.encode())
        h.update(b"\0")
    return h.hexdigest()


def cadvisor_files(spec: ClusterSpec, node: Node) -> list[File]:
    """cAdvisor's unit on a client: port 8080 on the node's address."""
    return plain_files(spec, "cadvisor", node, [])


def dnsmasq_files(spec: ClusterSpec, node: Node) -> list[File]:
    """The DNS forwarder's settings on a node."""
    return plain_files(spec, "dnsmasq", node, [])


def registry_files(spec: ClusterSpec, node: Node) -> list[File]:
    """The registry's settings on the load balancer."""
    return plain_files(spec, "docker-registry", node, [])


def docker_files(spec: ClusterSpec, node: Node) -> list[File]:
    """Docker's settings on a client."""
    return plain_files(spec, "docker", node, [])


def loadbalancer_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> tuple[list[File], list[File]]:
    """The front load balancer's files: (nginx's, consul-template's)."""
    return plain_files(spec, "nginx", node, servers), plain_files(spec, "consul-template", node, servers)


def backend_files(spec: ClusterSpec, node: Node) -> tuple[list[File], list[File]]:
    """A client's backend balancer (two-tier): (nginx's, consul-template's)."""
    return plain_files(spec, "nginx", node, []), plain_files(spec, "consul-template", node, [])
