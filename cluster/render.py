"""Pure rendering: the config files of each agent on each node, from templates/ with jinja2.

Consul and Nomad merge every file in their config directory, so each concern has a small
template of its own (base, server, client) and a node gets only the files of its roles.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from cluster.config import BACKEND_PORT, ClusterSpec
from cluster.topology import Node, Role

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # HCL and unit files, not HTML
)


@dataclass(frozen=True)
class File:
    """One file to put on a machine."""

    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"


def render_template(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def consul_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> list[File]:
    """Consul's config directory and unit for one node (server or client agent)."""
    server = node.role is Role.SERVER
    ctx = {"datacenter": spec.datacenter, "node": node, "servers": servers, "server": server,
           "tls": spec.security.tls, "acl": spec.security.acl}
    files = [
        File("/etc/consul.d/consul.hcl", render_template("consul/consul.hcl.j2", **ctx), "0640", "consul"),
        File(API_ENV, render_template("consul/api.env.j2", **ctx), "0640", "consul"),
    ]
    if spec.security.tls:
        files.append(File("/etc/consul.d/tls.hcl", render_template("consul/tls.hcl.j2", **ctx),
                          "0640", "consul"))
    if spec.load_balancing == "two-tier" and node.role is Role.CLIENT and not spec.security.acl:
        files.append(_backend_service(node, ""))
    if server:
        files.append(
            File("/etc/consul.d/server.hcl", render_template("consul/server.hcl.j2", **ctx), "0640", "consul")
        )
    files.append(
        File("/etc/systemd/system/consul.service", render_template("systemd/consul.service.j2", **ctx))
    )
    return files


def nomad_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> list[File]:
    """Nomad's config directory and unit for a server or client node."""
    server = node.role is Role.SERVER
    interface = f'{{{{ GetAllInterfaces | include \\"address\\" \\"{node.address}\\" | attr \\"name\\" }}}}'
    ctx = {
        "datacenter": spec.datacenter,
        "region": spec.region,
        "node": node,
        "servers": servers,
        "server": server,
        "settings": spec.client_settings.get(node.name, spec.default_client),
        "interface_of_address": interface,
        "tls": spec.security.tls,
    }
    files = [File("/etc/nomad.d/nomad.hcl", render_template("nomad/nomad.hcl.j2", **ctx))]
    if spec.security.tls:
        files.append(File("/etc/nomad.d/tls.hcl", render_template("nomad/tls.hcl.j2", **ctx)))
    if spec.security.acl:
        files.append(File("/etc/nomad.d/acl.hcl", render_template("nomad/acl.hcl.j2", **ctx)))
    if server:
        files.append(File("/etc/nomad.d/server.hcl", render_template("nomad/server.hcl.j2", **ctx)))
    else:
        files.append(File("/etc/nomad.d/client.hcl", render_template("nomad/client.hcl.j2", **ctx)))
    files.append(
        File("/etc/systemd/system/nomad.service", render_template("systemd/nomad.service.j2", **ctx))
    )
    return files


# How the project's scripts on a machine reach the APIs (sourced; see consul/api.env.j2).
API_ENV = "/etc/consul.d/api.env"
TLS_FILES = ("ca.pem", "agent.pem", "agent-key.pem")
# Every file that can hold a secret (or comes with one, as the certificates): a file of these
# that a node should not have (a part turned off) goes. api.token and api.header: the token the
# project's scripts on the machine use (see consul/api.env.j2).
SECRET_FILES = {
    "consul": ("/etc/consul.d/gossip.hcl", *(f"/etc/consul.d/tls/{f}" for f in TLS_FILES),
               "/etc/consul.d/acl.hcl", "/etc/consul.d/api.token", "/etc/consul.d/api.header",
               "/etc/consul.d/backend.hcl"),
    "nomad": ("/etc/nomad.d/gossip.hcl", *(f"/etc/nomad.d/tls/{f}" for f in TLS_FILES),
              "/etc/nomad.d/consul-token.hcl", "/etc/nomad.d/api.token", "/etc/nomad.d/api.header"),
    "consul-template": ("/etc/consul-template.d/token.env",),
}


def _backend_service(node: Node, token: str) -> File:
    """The backend balancer as a Consul service (two-tier); with ACLs it carries the node's
    token, which may register it, and is a secret file."""
    return File("/etc/consul.d/backend.hcl",
                render_template("consul/backend.hcl.j2", node=node, port=BACKEND_PORT, token=token),
                "0640", "consul")


def agent_user(product: str, node: Node) -> str:
    """The user a product's agent runs as on NODE: it owns the agent's files."""
    if product == "consul":
        return "consul"
    return "nomad" if product == "nomad" and node.role is Role.SERVER else "root"


def secret_files(spec: ClusterSpec, product: str, node: Node, values: Mapping[str, str]) -> list[File]:
    """The files of PRODUCT on NODE that hold secrets, from VALUES (the outputs of
    ClusterSecrets and of the node's NodeCredentials), with the certificates that go with
    them. They are never part of a command's text: the install step gets them on stdin."""
    files = []
    owner = agent_user(product, node)
    if spec.security.tls and product in ("consul", "nomad"):
        tls_dir = f"/etc/{product}.d/tls"
        files += [File(f"{tls_dir}/ca.pem", values["ca_cert_pem"], "0644", owner),
                  File(f"{tls_dir}/agent.pem", values["cert_pem"], "0644", owner),
                  File(f"{tls_dir}/agent-key.pem", values["key_pem"], "0600", owner)]
    if spec.security.gossip and product == "consul":
        files.append(File("/etc/consul.d/gossip.hcl",
                          render_template("consul/gossip.hcl.j2", key=values["consul_gossip_key"]),
                          "0640", owner))
    if spec.security.gossip and product == "nomad" and node.role is Role.SERVER:
        files.append(File("/etc/nomad.d/gossip.hcl",
                          render_template("nomad/gossip.hcl.j2", key=values["nomad_gossip_key"]),
                          "0600", owner))
    if spec.security.acl:
        files += _acl_files(product, node, values, owner)
        if product == "consul" and spec.load_balancing == "two-tier" and node.role is Role.CLIENT:
            files.append(_backend_service(node, values["consul_agent_token"]))
    return files


def _acl_files(product: str, node: Node, values: Mapping[str, str], owner: str) -> list[File]:
    """ACL tokens: the agents' own, and the one the project's scripts use on the machine
    (servers: the management tokens; the others: Consul's node token, Nomad's machine token)."""
    server = node.role is Role.SERVER
    if product == "consul-template":
        return [File("/etc/consul-template.d/token.env",
                     f"CONSUL_HTTP_TOKEN={values['consul_template_token']}\n", "0600", owner)]
    if product == "consul":
        acl = render_template("consul/acl.hcl.j2", server=server, values=values)
        token = values["consul_management_token" if server else "consul_agent_token"]
        header = "X-Consul-Token"
        files = [File("/etc/consul.d/acl.hcl", acl, "0640", owner)]
    else:
        token = values["nomad_management_token" if server else "nomad_machine_token"]
        header = "X-Nomad-Token"
        files = [File("/etc/nomad.d/consul-token.hcl",
                      render_template("nomad/consul-token.hcl.j2", token=values["nomad_consul_token"]),
                      "0600", owner)]
    return [*files, File(f"/etc/{product}.d/api.token", token + "\n", "0600", owner),
            File(f"/etc/{product}.d/api.header", f"{header}: {token}\n", "0600", owner)]


def secret_paths(spec: ClusterSpec, product: str, node: Node) -> list[str]:
    """The paths of secret_files, known without the values."""
    placeholders = defaultdict(str)  # type: defaultdict[str, str]
    return [f.path for f in secret_files(spec, product, node, placeholders)]


def digest(files: list[File]) -> str:
    """A hash over paths, modes, owners and contents: changes when anything installed changes."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.mode}\0{f.owner}\0".encode())
        h.update(f.content.encode())
        h.update(b"\0")
    return h.hexdigest()


def cadvisor_files(node: Node) -> list[File]:
    """cAdvisor's unit on a client: port 8080 on the node's address."""
    return [
        File(
            "/etc/systemd/system/cadvisor.service", render_template("systemd/cadvisor.service.j2", node=node)
        )
    ]


def loadbalancer_files(spec: ClusterSpec, node: Node, servers: list[Node]) -> tuple[list[File], list[File]]:
    """The front load balancer's files: (nginx's, consul-template's).

    services.ctmpl (upstreams) and locations.ctmpl (routes) are consul-template's own (Go)
    templates, copied as they are: generic, they route every service tagged `lb` to
    /<service>/, on its instances (one-tier) or on the backend balancers of the clients that
    run it (two-tier: two-tier-*.ctmpl).
    """
    port = 8501 if spec.security.tls else 8500
    ctx = {"node": node, "consul_ui_upstreams": [f"{s.address}:{port}" for s in servers],
           "tls": spec.security.tls, "datacenter": spec.datacenter}
    prefix = "two-tier-" if spec.load_balancing == "two-tier" else ""
    return _balancer_files(ctx, prefix)


def backend_files(spec: ClusterSpec, node: Node) -> tuple[list[File], list[File]]:
    """A client's backend balancer (two-tier): nginx on NODE's address, port BACKEND_PORT,
    routing /<service>/ to the instances on NODE only (backend-*.ctmpl)."""
    ctx = {"node": node, "consul_ui_upstreams": [], "tls": spec.security.tls, "datacenter": spec.datacenter,
           "listen": f"{node.address}:{BACKEND_PORT}", "backend_node": node.short_hostname}
    return _balancer_files(ctx, "backend-")


def _balancer_files(ctx: dict[str, Any], prefix: str) -> tuple[list[File], list[File]]:
    nginx = [File("/etc/nginx/nginx.conf", render_template("lb/nginx.conf.j2", **ctx))]
    consul_template = [
        File("/etc/consul-template.d/consul-template.hcl",
             render_template("lb/consul-template.hcl.j2", **ctx)),
        *(File(f"/etc/consul-template.d/{name}.ctmpl",
               (TEMPLATES / "lb" / f"{prefix}{name}.ctmpl").read_text())
          for name in ("services", "locations")),
        File("/etc/systemd/system/consul-template.service",
             render_template("systemd/consul-template.service.j2", **ctx)),
    ]
    return nginx, consul_template
