"""`./run status` for people: a few compact tables, then what is unhealthy (pure).

A report holds no secret (the tokens stay with the API readers), so nothing here can print one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cluster.status.health import Report


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned columns, two spaces apart; `-` for an empty cell."""
    cells = [[str(h) for h in headers]]
    cells += [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def _yes(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def _state(running: bool | None) -> str:
    return "?" if running is None else "running" if running else "stopped"


def _memory(value: int | None) -> str:
    return f"{value / 2**20:.0f} MiB" if value else "-"


def _heading(title: str, error: str | None, leader: str) -> str:
    return f"{title}  error: {error}" if error else f"{title}  leader: {leader or 'none'}"


def render_report(report: Report) -> str:
    """The human report: machines, Consul, Nomad (servers, nodes, jobs), routes, versions,
    drift; last, `healthy` or each problem."""
    out = [f"stack {report.stack}", "", "MACHINES"]
    out += table(["NAME", "ROLE", "HOSTNAME", "ADDRESS", "STATE", "MEMORY"],
                 [[m.name, m.role, m.hostname, m.address, _state(m.running), _memory(m.memory_bytes)]
                  for m in report.machines])
    out += ["", _heading("CONSUL", report.consul.error, report.consul.leader)]
    if not report.consul.error:
        out += table(["MEMBER", "ADDRESS", "ROLE", "STATUS", "LEADER", "VERSION"],
                     [[m.name, m.address, m.role, m.status, "*" if m.leader else "", m.version]
                      for m in report.consul.members])
    nomad = report.nomad
    out += ["", _heading("NOMAD", nomad.error, nomad.leader)]
    if not nomad.error:
        out += table(["SERVER", "ADDRESS", "STATUS", "LEADER", "VERSION"],
                     [[s.name, s.address, s.status, "*" if s.leader else "", s.version]
                      for s in nomad.servers])
        out.append("")
        out += table(["NODE", "ADDRESS", "STATUS", "ELIGIBLE", "DRAINING", "VERSION"],
                     [[n.name, n.address, n.status, _yes(n.eligible), _yes(n.draining), n.version]
                      for n in nomad.nodes])
        out.append("")
        rows: list[list[object]] = []
        for j in nomad.jobs:
            rows.append([j.id, j.type, j.status, "", "", ""])
            rows += [[f"  {a.id}", a.task_group, a.client_status, a.desired_status, a.node,
                      "" if a.healthy is None else "healthy" if a.healthy else "unhealthy"]
                     for a in j.allocations]
        out += table(["JOB / ALLOCATION", "TYPE / GROUP", "STATUS", "DESIRED", "NODE", "HEALTH"], rows)
    out += ["", "LOAD BALANCER ROUTES" + (f"  error: {report.routes.error}" if report.routes.error else "")]
    if not report.routes.error:
        out += table(["ROUTE", "SERVICE", "HEALTHY", "INSTANCES"],
                     [[r.path, r.service, f"{r.healthy_instances}/{len(r.instances)}",
                       " ".join(f"{i.node}:{i.port}{'' if i.passing else '(failing)'}" for i in r.instances)]
                      for r in report.routes.routes])
    out += ["", f"VERSIONS  stack: consul {report.versions.get('consul', '?')}, "
                f"nomad {report.versions.get('nomad', '?')}"]
    out += table(["PRODUCT", "AGENT", "VERSION"],
                 [[p, a, v + ("" if not s or v == s else f" (stack: {s})")]
                  for p, a, v, s in report.agent_versions()])
    out += ["", "DRIFT  " + ("not checked" if not report.drift.checked else "found" if report.drift.found
                             else "none")]
    if report.drift.found:
        out += table(["MACHINE", "PRODUCT", "REASONS"],
                     [[m, p, "; ".join(r)] for m, products in sorted(report.drift.machines.items())
                      for p, r in sorted(products.items()) if r])
    problems = report.problems()
    out.append("")
    if problems:
        out.append(f"UNHEALTHY: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        out += [f"  - {p}" for p in problems]
    else:
        out.append("HEALTHY: every machine runs, every member is alive, leaders are elected, nodes ready, "
                   "allocations running, every route has a healthy instance")
    return "\n".join(out)
