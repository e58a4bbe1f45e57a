"""Reading Consul's and Nomad's HTTP APIs for `./run status`: GET only, JSON only, with the
cluster's CA (in memory) and a read-only token sent as a header, never printed.

    consul = Api(["https://10.210.1.10:8501"], "X-Consul-Token", token, ca_pem)
    read_consul(consul)  -> (ConsulView, RoutesView)
    read_nomad(Api([...:4646], "X-Nomad-Token", token, ca_pem)) -> NomadView

An API that cannot be read gives a view with `error` set (the URL and the reason; never the
token), so the rest of the report still shows.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.status import health

TIMEOUT = 5.0


class ApiError(Exception):
    """An answer that is not a 2xx with JSON, or no answer; the message names no secret."""


@dataclass
class Api:
    """One API (Consul's or Nomad's) on the servers at BASES, tried in order until one answers
    (with several servers, a stopped one is skipped)."""

    bases: list[str]
    token_header: str  # X-Consul-Token, X-Nomad-Token
    token: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    timeout: float = TIMEOUT

    def _context(self) -> ssl.SSLContext | None:
        if not any(b.startswith("https:") for b in self.bases):
            return None
        # Only the cluster's CA when the stack has one; the system's otherwise.
        return ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else ssl.create_default_context()

    def get(self, path: str) -> Any:
        """The JSON answer of GET PATH (with its query), from the first server that answers."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers[self.token_header] = self.token
        context = self._context()
        reasons = []
        for base in self.bases:
            request = urllib.request.Request(base.rstrip("/") + path, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=context) as answer:
                    body = answer.read()
            except urllib.error.HTTPError as err:
                hint = " (the token's policy does not allow it)" if err.code == 403 else ""
                raise ApiError(f"GET {base}{path}: HTTP {err.code}{hint}") from None
            except (urllib.error.URLError, OSError) as err:
                reasons.append(f"{base}: {getattr(err, 'reason', err)}")
                continue
            try:
                return json.loads(body)
            except ValueError:
                raise ApiError(f"GET {base}{path}: the answer is not JSON") from None
        raise ApiError("cannot reach " + "; ".join(reasons))


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def read_consul(api: Api) -> tuple[health.ConsulView, health.RoutesView]:
    """Consul's leader and members; the load balancer's routes and their instances."""
    try:
        view = health.consul_view(api.get("/v1/status/leader"), api.get("/v1/agent/members"))
    except ApiError as err:
        view = health.ConsulView(error=str(err))
    try:
        services = api.get("/v1/catalog/services")
        routes = health.RoutesView([health.route(name, api.get(f"/v1/health/service/{_quote(name)}"))
                                    for name in health.routed_services(services)])
    except ApiError as err:
        routes = health.RoutesView(error=str(err))
    return view, routes


def read_nomad(api: Api) -> health.NomadView:
    """Nomad's leader, servers, nodes, and every job (all namespaces) with its allocations."""
    try:
        jobs = [health.job(j, api.get(f"/v1/job/{_quote(j['ID'])}/allocations"
                                      f"?namespace={_quote(j.get('Namespace', 'default'))}"))
                for j in api.get("/v1/jobs?namespace=*")]
        return health.nomad_view(api.get("/v1/status/leader"), api.get("/v1/agent/members"),
                                 api.get("/v1/nodes"), jobs)
    except ApiError as err:
        return health.NomadView(error=str(err))


def bases(ui_url: str, server_addresses: Sequence[str]) -> list[str]:
    """The API's base URLs: the UI's (`https://10.210.1.10:8501/ui/` -> its scheme, host and
    port), then the same port on every other server."""
    parts = urllib.parse.urlsplit(ui_url)
    first = f"{parts.scheme}://{parts.netloc}"
    others = [f"{parts.scheme}://{a}:{parts.port}" for a in server_addresses if a != parts.hostname]
    return [first, *others]
