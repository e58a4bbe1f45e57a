"""Two-tier load balancing on the shared lab cluster: switched on, checked under load, and
switched back off, so the tests after it find the one-tier cluster they expect."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ..waiting import wait_until
from .conftest import Project, on_machine
from .load import load

pytestmark = pytest.mark.e2e

LB = "10.210.9.20"
BACKENDS = {"client1": "10.210.9.31:8090", "client2": "10.210.9.32:8090", "client3": "10.210.9.33:8090"}


@pytest.fixture(scope="module")
def two_tier(project: Project, cluster: dict[str, Any]) -> Iterator[Project]:
    project.pulumi("config", "set", "hashicluster:loadBalancing", "two-tier")
    project.timed("up: to two-tier load balancing", "up", "--yes", "--skip-preview")
    yield project
    project.pulumi("config", "rm", "hashicluster:loadBalancing")
    project.timed("up: back to one-tier", "up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")


def front_upstreams(project: Project) -> set[str]:
    conf = on_machine(project, "frontend-lb", "cat /etc/nginx/conf.d/services.conf")
    return set(re.findall(r"server (\S+) max_fails", conf))


def hosts_answering(project: Project, requests: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(requests):
        out = project.lab("exec", "--", "curl", "-sf", "-m", "5", f"http://{LB}/fib/10").stdout
        answer = json.loads(out)
        assert answer["fib"] == 55
        seen[answer["host"]] += 1
    return seen


def test_the_front_routes_to_the_backends_of_the_clients_that_run_fib(two_tier: Project) -> None:
    allocs = json.loads(on_machine(two_tier, "root-server", "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646 "
                                   "nomad job allocs -json fib"))
    nodes = {a["NodeName"] for a in allocs if a["ClientStatus"] == "running"}
    assert nodes and nodes <= set(BACKENDS), allocs
    # A backend joins the front's routes once its Consul check passes, a moment after the up.
    wait_until("the front routes to the backends of the clients that run fib, and only to them",
               lambda: front_upstreams(two_tier) == {BACKENDS[n] for n in nodes},
               state=lambda: front_upstreams(two_tier))
    # Each backend routes to its own node's instances only.
    for node in nodes:
        conf = on_machine(two_tier, node, "cat /etc/nginx/conf.d/services.conf")
        node_address = BACKENDS[node].split(":")[0]
        assert set(re.findall(r"server ([\d.]+):\d+ max_fails", conf)) == {node_address}, conf
    seen = hosts_answering(two_tier, 18)
    assert len(seen) >= 2 and set(seen) <= {f"{n}.demo" for n in nodes}, seen


def test_a_stopped_backend_balancer_is_routed_around(two_tier: Project) -> None:
    routed = front_upstreams(two_tier)
    victims = [n for n in sorted(BACKENDS) if BACKENDS[n] in routed]
    assert len(victims) >= 2, f"the front should route to two backends or more: {routed}"
    victim = victims[0]
    try:
        with load(two_tier, LB) as result:
            on_machine(two_tier, victim, "systemctl stop nginx")
            dropped = wait_until(f"the front no longer routes to {victim}'s stopped backend",
                                 lambda: BACKENDS[victim] not in front_upstreams(two_tier),
                                 state=lambda: front_upstreams(two_tier))
            # requests go on through the routes without it
            result.wait_for_requests(20, f"with {victim}'s backend out of the front's routes")
        print(f"two-tier: backend of {victim} stopped, out of the front's routes after {dropped:.1f}s; "
              f"{result}")
        assert result.failed == 0, result
        assert f"{victim}.demo" not in hosts_answering(two_tier, 9)
    finally:
        on_machine(two_tier, victim, "systemctl start nginx")
    wait_until(f"{victim}'s backend back in the front's routes",
               lambda: BACKENDS[victim] in front_upstreams(two_tier), state=lambda: front_upstreams(two_tier))
