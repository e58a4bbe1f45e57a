"""The cluster's health from the APIs' answers (pure): what each API says, in one model, and
the problems in it.

    consul = consul_view(leader, members, routes)        # /v1/status/leader, /v1/agent/members
    nomad = nomad_view(leader, members, nodes, jobs)     # ..., /v1/nodes, /v1/jobs + allocations
    report = Report(stack, machines, consul, nomad, routes, versions, drift)
    report.problems()                                    # [] when all is well

Every `*_view` takes the JSON as the API answers it (dicts and lists) and keeps what a user
wants to see. A section whose API could not be read carries the error instead, and that is a
problem too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The load balancer routes every Consul service with this tag (templates/lb/*.ctmpl), when
# nginx can take its name as it is.
LB_TAG = "lb"
ROUTABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# Consul's serf member status codes (/v1/agent/members).
CONSUL_MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


@dataclass
class Machine:
    name: str  # the stack's name of the node: root-server, client1
    hostname: str
    role: str
    address: str
    running: bool | None = None  # None: not known (not a lab stack)
    memory_bytes: int | None = None


@dataclass
class Member:
    """A Consul member or a Nomad server."""

    name: str
    address: str
    status: str  # alive, left, failed, ...
    role: str  # Consul: server or client; Nomad: server
    version: str
    leader: bool = False


@dataclass
class NomadNode:
    name: str
    address: str
    status: str  # ready, down, initializing, disconnected
    eligible: bool
    draining: bool
    version: str


@dataclass
class Allocation:
    id: str
    node: str
    task_group: str
    client_status: str  # running, pending, failed, complete, lost
    desired_status: str  # run, stop, evict
    healthy: bool | None  # the deployment's word; None when there is none


@dataclass
class Job:
    id: str
    namespace: str
    type: str
    status: str  # running, pending, dead
    allocations: list[Allocation] = field(default_factory=list)


@dataclass
class Instance:
    node: str
    address: str
    port: int
    passing: bool


@dataclass
class Route:
    """One route of the load balancer: /<service>/ to the service's passing instances."""

    service: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{self.service}/"

    @property
    def healthy_instances(self) -> int:
        return sum(1 for i in self.instances if i.passing)


@dataclass
class ConsulView:
    leader: str = ""
    members: list[Member] = field(default_factory=list)
    error: str | None = None


@dataclass
class NomadView:
    leader: str = ""
    servers: list[Member] = field(default_factory=list)
    nodes: list[NomadNode] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    error: str | None = None


@dataclass
class RoutesView:
    routes: list[Route] = field(default_factory=list)
    error: str | None = None


@dataclass
class Drift:
    """What the drift check recorded per machine ({machine: {product: [reasons]}}); not
    checked when the stack has no such record."""

    checked: bool = False
    machines: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """Any machine with a reason."""
        return any(reasons for products in self.machines.values() for reasons in products.values())


def _version(build: str) -> str:
    """`1.14.11:3b3b4e8f` (Consul's build tag) -> `1.14.11`."""
    return build.split(":", 1)[0]


def consul_member(raw: Mapping[str, Any], leader: str) -> Member:
    """One entry of Consul's /v1/agent/members; LEADER: /v1/status/leader's answer."""
    tags = raw.get("Tags") or {}
    status = raw.get("Status", 0)
    address = str(raw.get("Addr", ""))
    server = tags.get("role") == "consul"
    if isinstance(status, int):
        status = CONSUL_MEMBER_STATUS.get(status, str(status))
    return Member(name=str(raw.get("Name", "")), address=address, status=str(status),
                  role="server" if server else "client", version=_version(str(tags.get("build", ""))),
                  leader=server and bool(leader) and leader == f"{address}:{tags.get('port', '8300')}")


def consul_view(leader: str, members: Sequence[Mapping[str, Any]]) -> ConsulView:
    """Consul's /v1/status/leader (`"10.210.1.10:8300"`, `""` without one) and /v1/agent/members."""
    return ConsulView(leader=leader or "", members=sorted((consul_member(m, leader) for m in members),
                                                          key=lambda m: (m.role != "server", m.name)))


def nomad_server(raw: Mapping[str, Any], leader: str) -> Member:
    """One entry of the `Members` of Nomad's /v1/agent/members."""
    tags = raw.get("Tags") or {}
    address = str(raw.get("Addr", ""))
    return Member(name=str(raw.get("Name", "")), address=address, status=str(raw.get("Status", "")),
                  role="server", version=_version(str(tags.get("build", ""))),
                  leader=bool(leader) and leader == f"{address}:{tags.get('port', '4647')}")


def nomad_node(raw: Mapping[str, Any]) -> NomadNode:
    """One entry of Nomad's /v1/nodes."""
    return NomadNode(name=str(raw.get("Name", "")), address=str(raw.get("Address", "")),
                     status=str(raw.get("Status", "")),
                     eligible=raw.get("SchedulingEligibility") == "eligible",
                     draining=bool(raw.get("Drain")), version=str(raw.get("Version", "")))


def allocation(raw: Mapping[str, Any]) -> Allocation:
    """One entry of Nomad's /v1/job/ID/allocations."""
    deployment = raw.get("DeploymentStatus") or {}
    healthy = deployment.get("Healthy")
    return Allocation(id=str(raw.get("ID", ""))[:8], node=str(raw.get("NodeName", "")),
                      task_group=str(raw.get("TaskGroup", "")),
                      client_status=str(raw.get("ClientStatus", "")),
                      desired_status=str(raw.get("DesiredStatus", "")),
                      healthy=healthy if isinstance(healthy, bool) else None)


def job(raw: Mapping[str, Any], allocations: Sequence[Mapping[str, Any]]) -> Job:
    """One entry of Nomad's /v1/jobs with its /v1/job/ID/allocations."""
    return Job(id=str(raw.get("ID", "")), namespace=str(raw.get("Namespace", "default")),
               type=str(raw.get("Type", "")), status=str(raw.get("Status", "")),
               allocations=[allocation(a) for a in allocations])


def nomad_view(leader: str, members: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]],
               jobs: Sequence[Job]) -> NomadView:
    """Nomad's /v1/status/leader (`"10.210.1.10:4647"`), /v1/agent/members, /v1/nodes, and the
    jobs (job())."""
    return NomadView(leader=leader or "",
                     servers=sorted((nomad_server(m, leader) for m in members.get("Members") or []),
                                    key=lambda m: m.name),
                     nodes=sorted((nomad_node(n) for n in nodes), key=lambda n: n.name),
                     jobs=sorted(jobs, key=lambda j: (j.namespace, j.id)))


def routed_services(services: Mapping[str, Sequence[str]]) -> list[str]:
    """The services the load balancer routes, from Consul's /v1/catalog/services
    ({name: [tags]}): tagged `lb`, with a name nginx takes."""
    return sorted(name for name, tags in services.items()
                  if LB_TAG in (tags or []) and ROUTABLE.fullmatch(name))


def instance(raw: Mapping[str, Any]) -> Instance:
    """One entry of Consul's /v1/health/service/NAME: passing when every check passes (what
    consul-template's `|passing` keeps)."""
    node = raw.get("Node") or {}
    service = raw.get("Service") or {}
    checks = raw.get("Checks") or []
    return Instance(node=str(node.get("Node", "")),
                    address=str(service.get("Address") or node.get("Address", "")),
                    port=int(service.get("Port") or 0),
                    passing=all(c.get("Status") == "passing" for c in checks))


def route(service: str, entries: Sequence[Mapping[str, Any]]) -> Route:
    return Route(service, sorted((instance(e) for e in entries), key=lambda i: (i.node, i.port)))


def _short(hostname: str) -> str:
    return hostname.split(".", 1)[0]


@dataclass
class Report:
    """Everything `./run status` shows, and what of it is unhealthy."""

    stack: str
    machines: list[Machine]
    consul: ConsulView
    nomad: NomadView
    routes: RoutesView
    versions: dict[str, str]  # the stack's: {"consul": "1.14.11", "nomad": "1.6.3"}
    drift: Drift

    def problems(self) -> list[str]:
        """What is unhealthy, one sentence each; empty when all is well."""
        found: list[str] = []
        ours = {_short(m.hostname) for m in self.machines}
        for m in self.machines:
            if m.running is False:
                found.append(f"machine {m.name} ({m.address}) is not running")
        if self.consul.error:
            found.append(f"consul: {self.consul.error}")
        else:
            if not self.consul.leader:
                found.append("consul: no leader")
            found += _member_problems("consul member", self.consul.members, ours)
            missing = sorted(ours - {m.name for m in self.consul.members})
            found += [f"consul member {name}: not a member" for name in missing]
        if self.nomad.error:
            found.append(f"nomad: {self.nomad.error}")
        else:
            if not self.nomad.leader:
                found.append("nomad: no leader")
            found += _member_problems("nomad server", self.nomad.servers,
                                      {f"{name}.{_region(self.nomad.servers)}" for name in ours})
            registered = {n.name for n in self.nomad.nodes}
            found += [f"nomad node {_short(m.hostname)}: not registered" for m in self.machines
                      if m.role == "client" and _short(m.hostname) not in registered]
            for n in self.nomad.nodes:
                if n.status != "ready":
                    found.append(f"nomad node {n.name}: {n.status}")
                elif n.draining:
                    found.append(f"nomad node {n.name}: draining")
                elif not n.eligible:
                    found.append(f"nomad node {n.name}: not eligible for scheduling")
            for j in self.nomad.jobs:
                found += _job_problems(j)
        if self.routes.error:
            found.append(f"load balancer routes: {self.routes.error}")
        for r in self.routes.routes:
            if not r.healthy_instances:
                found.append(f"route {r.path}: no healthy instance of {r.service}")
        for machine, products in sorted(self.drift.machines.items()):
            for product, reasons in sorted(products.items()):
                if reasons:
                    found.append(f"drift on {machine}: {product}: {'; '.join(reasons)}")
        return found

    def agent_versions(self) -> list[tuple[str, str, str, str]]:
        """(product, agent, version, the stack's version) of every agent the APIs name."""
        rows = [("consul", m.name, m.version, self.versions.get("consul", "")) for m in self.consul.members]
        rows += [("nomad", m.name, m.version, self.versions.get("nomad", "")) for m in self.nomad.servers]
        rows += [("nomad", n.name, n.version, self.versions.get("nomad", "")) for n in self.nomad.nodes]
        return rows

    def as_json(self) -> dict[str, Any]:
        """The whole report as one JSON document (for scripts)."""
        problems = self.problems()
        return {
            "stack": self.stack,
            "healthy": not problems,
            "problems": problems,
            "machines": [asdict(m) for m in self.machines],
            "consul": asdict(self.consul),
            "nomad": asdict(self.nomad),
            "routes": {"error": self.routes.error,
                       "routes": [{"service": r.service, "path": r.path,
                                   "healthy_instances": r.healthy_instances,
                                   "instances": [asdict(i) for i in r.instances]}
                                  for r in self.routes.routes]},
            "versions": {"stack": self.versions,
                         "agents": [{"product": p, "agent": a, "version": v, "stack_version": s}
                                    for p, a, v, s in self.agent_versions()]},
            "drift": asdict(self.drift),
        }


def _region(servers: Sequence[Member]) -> str:
    """The region suffix of Nomad's server names (`root.global`)."""
    return next((s.name.split(".", 1)[1] for s in servers if "." in s.name), "global")


def _member_problems(what: str, members: Sequence[Member], ours: set[str]) -> list[str]:
    """A member not alive is a problem, but one that left the cluster and is no machine of
    the stack any more (a client scaled away) is only shown."""
    return [f"{what} {m.name}: {m.status}" for m in members
            if m.status != "alive" and not (m.status == "left" and m.name not in ours)]


def _job_problems(j: Job) -> list[str]:
    """A running job's allocations that should run must be running and not unhealthy."""
    if j.status != "running":
        return []
    wanted = [a for a in j.allocations if a.desired_status == "run"]
    found = [f"job {j.id}: allocation {a.id} on {a.node or '?'} is {a.client_status}"
             for a in wanted if a.client_status != "running"]
    found += [f"job {j.id}: allocation {a.id} on {a.node or '?'} is unhealthy"
              for a in wanted if a.client_status == "running" and a.healthy is False]
    if j.type == "service" and not any(a.client_status == "running" for a in wanted):
        found.append(f"job {j.id}: no running allocation")
    return found
