"""NomadJobProvider against a real Nomad and Consul (-dev, loopback): create, diff, update,
delete of jobs/fib-raw-exec.nomad.hcl and of a job that never gets healthy; the parse of the
echo fixture (it runs in containers, which the dev agent has not: tests/e2e).

The provider's methods are called directly, as Pulumi's dynamic provider host would."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cluster import jobs
from tests.jobs.conftest import DevAgents

from ..waiting import wait_until

pytestmark = pytest.mark.long  # real agents, real deployments

ROOT = Path(__file__).resolve().parents[2]
FIB_HCL = (ROOT / "jobs" / "fib-raw-exec.nomad.hcl").read_text()  # the dev agent has no Docker
ECHO_HCL = (ROOT / "tests" / "e2e" / "fixtures" / "echo.nomad.hcl").read_text()


def props(agents: DevAgents, hcl: str, **settings: Any) -> dict[str, Any]:
    return {"name": "fib", "hcl": hcl, "address": agents.nomad, "wait_healthy": True,
            "timeout": 300.0, "purge_on_delete": True, **settings}


def endpoints(agents: DevAgents, job_id: str) -> dict[str, str]:
    """{allocation ID: http://ip:port} of the job's running allocations."""
    api = jobs.connect(agents.nomad)
    found = {}
    for stub in api.allocations(job_id):
        if stub["ClientStatus"] != "running":
            continue
        alloc = api.allocation(stub["ID"]) or {}
        port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
        found[stub["ID"]] = f"http://{port['HostIP']}:{port['Value']}"
    return found


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read().decode()


def test_server_side_parse_reads_the_embedded_sources(dev_agents: DevAgents) -> None:
    """What the provider submits: Nomad's parser (no file()) yields the sources verbatim."""
    api = jobs.connect(dev_agents.nomad)
    for hcl, source in ((FIB_HCL, ROOT / "jobs/fib/fib.py"),
                        (ECHO_HCL, ROOT / "tests/e2e/fixtures/echo.py")):
        job = api.parse(hcl)
        template = job["TaskGroups"][0]["Tasks"][0]["Templates"][0]
        assert template["EmbeddedTmpl"] == source.read_text()
        assert api.parse(hcl) == job, "parsing is deterministic"


def test_server_side_parse_takes_the_jobs_variables(dev_agents: DevAgents) -> None:
    """The containerized fib names the image the program built through its `image` variable."""
    api = jobs.connect(dev_agents.nomad)
    hcl = (ROOT / "jobs" / "fib.nomad.hcl").read_text()
    task = api.parse(hcl, {"image": "frontend.lb.demo:5000/fib:0123abcd"})["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["image"] == "frontend.lb.demo:5000/fib:0123abcd"
    default = api.parse(hcl)["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
    assert default == "frontend.lb.demo:5000/fib:latest"


def test_fib_lifecycle(dev_agents: DevAgents) -> None:
    provider = jobs.NomadJobProvider()
    timings: dict[str, float] = {}

    start = time.monotonic()
    created = provider.create(props(dev_agents, FIB_HCL))
    timings["create"] = time.monotonic() - start
    outs = created.outs or {}
    assert created.id == "fib"
    assert outs["job_id"] == "fib" and outs["job_version"] == 0
    assert outs["healthy_allocations"] == 3
    assert len(outs["spec_hash"]) == 64

    # Every allocation answers on its own address, and Consul has three passing instances
    # tagged for the load balancer.
    found = endpoints(dev_agents, "fib")
    assert len(found) == 3
    for alloc_id, url in found.items():
        status, body = get(f"{url}/fib/10")
        assert status == 200
        reply = json.loads(body)
        assert (reply["n"], reply["fib"], reply["instance"]) == (10, 55, alloc_id)
    passing = dev_agents.get(f"{dev_agents.consul}/v1/health/service/fib?passing=true")
    assert len(passing) == 3
    assert all(entry["Service"]["Tags"] == ["lb"] for entry in passing)

    # A stopped allocation is replaced (and the replacement gets healthy).
    stopped = next(iter(found))
    request = urllib.request.Request(f"{dev_agents.nomad}/v1/allocation/{stopped}/stop",
                                     method="POST", data=b"{}")
    urllib.request.urlopen(request, timeout=5).close()

    def replaced() -> bool:
        now = endpoints(dev_agents, "fib")
        passing = dev_agents.get(f"{dev_agents.consul}/v1/health/service/fib?passing=true")
        passing_urls = {f"http://{e['Service']['Address']}:{e['Service']['Port']}" for e in passing}
        return stopped not in now and len(now) == 3 and passing_urls == set(now.values())

    timings["replace a stopped allocation"] = wait_until(
        f"allocation {stopped[:8]} replaced: 3 other running allocations, exactly those passing in Consul",
        replaced, state=lambda: (endpoints(dev_agents, "fib"), dev_agents.log_tail(10)))

    # Formatting and comments are no change; the count is; a new job ID replaces.
    reformatted = "# the same job, commented\n" + FIB_HCL.replace("count = 3", "count   =   3")
    assert provider.diff("fib", outs, props(dev_agents, reformatted)).changes is False
    two = FIB_HCL.replace("count = 3", "count = 2")
    assert two != FIB_HCL
    diff = provider.diff("fib", outs, props(dev_agents, two))
    assert diff.changes is True and not diff.replaces
    renamed_hcl = FIB_HCL.replace('job "fib"', 'job "fib2"')
    renamed = provider.diff("fib", outs, props(dev_agents, renamed_hcl))
    assert renamed.changes is True and renamed.replaces == ["hcl"]

    start = time.monotonic()
    updated = provider.update("fib", outs, props(dev_agents, two)).outs or {}
    timings["update"] = time.monotonic() - start
    assert updated["job_version"] == 1 and updated["healthy_allocations"] == 2
    assert len(endpoints(dev_agents, "fib")) == 2
    assert provider.diff("fib", updated, props(dev_agents, two)).changes is False

    read = provider.read("fib", updated)
    assert read.id == "fib" and (read.outs or {})["healthy_allocations"] == 2

    start = time.monotonic()
    provider.delete("fib", updated)
    timings["delete"] = time.monotonic() - start
    assert jobs.connect(dev_agents.nomad).job("fib") is None, "purged"
    assert endpoints(dev_agents, "fib") == {}
    assert provider.read("fib", updated).id == "", "a deleted job reads as gone"
    print("timings:", {k: round(v, 1) for k, v in timings.items()})


def test_unhealthy_job_fails_with_its_state(dev_agents: DevAgents) -> None:
    """A task that exits at once: the error names the allocations and their task events.
    The job's health timeout is the time its task has to start and fail at least once."""
    broken = (FIB_HCL.replace('job "fib"', 'job "broken"')
              .replace('args    = ["local/fib.py"]',
                       'args    = ["-c", "import sys; sys.exit(\'fib: cannot start\')"]'))
    provider = jobs.NomadJobProvider()
    with pytest.raises(jobs.NomadJobError) as failure:
        provider.create(props(dev_agents, broken, name="broken", timeout=30.0))
    message = str(failure.value)
    assert "job broken version 0" in message and "not healthy after 30s" in message
    assert "allocation " in message and "task fib:" in message
    assert "Exit Code: 1" in message, message
    assert "    | fib: cannot start" in message, "the task's stderr"
    provider.delete("broken", props(dev_agents, broken, name="broken"))
    assert jobs.connect(dev_agents.nomad).job("broken") is None
