"""The demo end to end: fib scheduled by Nomad, found in Consul, reached through the load balancer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..waiting import wait_until
from .conftest import STACK, Project, on_machine
from .load import load

pytestmark = pytest.mark.e2e

LB = "10.210.9.20"
CLIENTS = {"client1": "10.210.9.31", "client2": "10.210.9.32", "client3": "10.210.9.33"}
NOMAD = "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def get(project: Project, url: str, timeout: int = 5) -> tuple[int, str]:
    """An HTTP GET from inside the lab network (from the load balancer machine's neighbour:
    the driver namespace), returning (status, body)."""
    proc = project.lab("exec", "--", "curl", "-s", "-m", str(timeout), "-o", "/dev/stdout",
                       "-w", "\\n%{http_code}", url, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def on_server(project: Project, command: str) -> str:
    return on_machine(project, "root-server", command)


def running_fib(project: Project) -> list[str]:
    """IDs of fib's running allocations."""
    allocs = json.loads(on_server(project, f"{NOMAD} nomad job allocs -json fib"))
    return [a["ID"] for a in allocs if a["ClientStatus"] == "running"]


def fib_instances(project: Project) -> dict[str, str]:
    """fib's instances that pass their checks in Consul: {service ID: address:port}. Nomad names
    a service instance after its allocation (`_nomad-task-<allocation ID>-...`)."""
    entries = json.loads(on_server(project, "api $CONSUL_HTTP_ADDR/v1/health/service/fib?passing=true"))
    return {e["Service"]["ID"]: f"{e['Service']['Address']}:{e['Service']['Port']}" for e in entries}


def lb_upstreams(project: Project) -> set[str]:
    """The instances (address:port) the load balancer's nginx routes to now."""
    conf = on_machine(project, "frontend-lb", "cat /etc/nginx/conf.d/services.conf")
    return set(re.findall(r"server (\S+) max_fails", conf))


def test_fib_through_the_load_balancer(project: Project, cluster: dict[str, Any]) -> None:
    instances = set()
    for n in (0, 1, 10, 50, 90):
        status, body = get(project, f"http://{LB}/fib/{n}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["fib"] == fib(n)
        instances.add(answer["instance"])
    for _ in range(12):
        instances.add(json.loads(get(project, f"http://{LB}/fib/5")[1])["instance"])
    assert len(instances) >= 2, instances


def test_hostname_of_the_load_balancer_resolves_on_the_machines(project: Project,
                                                                cluster: dict[str, Any]) -> None:
    out = project.lab("ssh", f"{STACK}-client1", "curl -s -m 5 http://frontend.lb.demo/fib/10").stdout
    assert json.loads(out)["fib"] == 55


def test_nomad_runs_three_fib_allocations(project: Project, cluster: dict[str, Any]) -> None:
    allocs = json.loads(on_server(project, f"{NOMAD} nomad job allocs -json fib"))
    running = [a for a in allocs if a["ClientStatus"] == "running"]
    assert len(running) == 3, [(a["ID"][:8], a["ClientStatus"]) for a in allocs]


def test_consul_ui_through_the_load_balancer(project: Project, cluster: dict[str, Any]) -> None:
    status, body = get(project, f"http://{LB}:8500/ui/")
    assert status == 200 and "Consul" in body
    status, body = get(project, f"http://{LB}:8500/v1/status/leader")
    assert status == 200 and "10.210.9.10:8300" in body


def test_cadvisor_on_every_client(project: Project, cluster: dict[str, Any]) -> None:
    for address in CLIENTS.values():
        status, body = get(project, f"http://{address}:8080/healthz")
        assert (status, body.strip()) == (200, "ok")
        status, body = get(project, f"http://{address}:8080/metrics")
        assert status == 200 and "container_cpu_usage_seconds_total" in body


def test_a_stopped_allocation_is_routed_around_and_replaced(project: Project,
                                                            cluster: dict[str, Any]) -> None:
    """Requests keep flowing through the load balancer while Nomad replaces a stopped instance."""
    running = running_fib(project)
    assert len(running) == 3, running
    victim = running[0]
    with load(project, LB) as result:
        on_server(project, f"{NOMAD} nomad alloc stop -detach {victim}")
        wait_until(f"3 running fib allocations other than the stopped {victim[:8]}",
                   lambda: len(set(running_fib(project)) - {victim}) == 3)

        def routed_to_the_replacement() -> bool:
            instances = fib_instances(project)
            return (len(instances) == 3 and not any(victim in i for i in instances)
                    and lb_upstreams(project) == set(instances.values()))

        # The replacement registers in Consul and joins the load balancer's routes, which
        # lose the stopped instance; requests go on through the new routes.
        wait_until("the load balancer routes fib to its 3 passing instances, the replacement's "
                   "among them and the stopped one's not", routed_to_the_replacement,
                   state=lambda: (fib_instances(project), lb_upstreams(project)))
        result.wait_for_requests(20, "with the replacement in the routes")
    print(f"failover: {result} around the replacement")
    assert result.failed == 0, result


def test_a_second_tagged_service_is_routed_without_template_changes(project: Project,
                                                                    cluster: dict[str, Any]) -> None:
    job = (FIXTURES / "echo.nomad.hcl").read_text()
    run_job = f"cat > /tmp/echo.nomad.hcl <<'EOF'\n{job}\nEOF\n{NOMAD} nomad job run /tmp/echo.nomad.hcl"
    on_server(project, run_job)
    answers: list[tuple[int, str]] = []

    def answer() -> int:
        answers.append(get(project, f"http://{LB}/echo/hello"))
        return answers[-1][0]

    wait_until("the load balancer routes /echo/ to the echo job", lambda: answer() == 200,
               poll=1, state=lambda: answers[-1])
    status, body = answers[-1]
    assert "echo from" in body and "path=/hello" in body, (status, body)
    on_server(project, f"{NOMAD} nomad job stop -purge echo")
    answers.clear()
    wait_until("the load balancer no longer routes /echo/ (404 or 503)", lambda: answer() in (404, 503),
               state=lambda: answers[-1])
    # Out of Consul before it stops (shutdown_delay): the route goes with no error in between.
    seen = [status for status, _ in answers]
    assert set(seen) <= {200, 404, 503}, seen


def test_preview_shows_a_change_to_the_job_spec(project: Project, cluster: dict[str, Any]) -> None:
    job_file = project.path / "jobs" / "fib.nomad.hcl"
    original = job_file.read_text()
    try:
        job_file.write_text(original + "\n# a comment is not a change\n")
        project.pulumi("preview", "--expect-no-changes")
        assert "count = 3" in original
        job_file.write_text(original.replace("count = 3", "count = 2", 1))
        steps = json.loads(project.pulumi("preview", "--diff", "--json").stdout)["steps"]
        changed = {s["urn"].rsplit("::", 1)[1]: s["op"] for s in steps if s["op"] != "same"}
        assert changed == {"job-fib": "update"}, changed
    finally:
        job_file.write_text(original)
