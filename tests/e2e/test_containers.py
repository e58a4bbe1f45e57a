"""fib in containers on the shared cluster: its image built from jobs/fib/ and pushed to the
cluster's registry on the load balancer, three containers of it on the clients, answers through
the load balancer; and a change to jobs/fib/fib.py is the image step and the job in the
preview, rolled out by `pulumi up` with no failed request."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from ..waiting import wait_until
from .conftest import Project, on_machine
from .load import load

pytestmark = pytest.mark.e2e

LB = "10.210.9.20"
ADDRESSES = {"client1": "10.210.9.31", "client2": "10.210.9.32", "client3": "10.210.9.33"}
CLIENTS = tuple(ADDRESSES)
REGISTRY = "frontend.lb.demo:5000"


def fib_containers(project: Project) -> dict[str, list[dict[str, Any]]]:
    """Per client, its running containers of job fib (docker ps, one JSON object a line)."""
    found = {}
    for client in CLIENTS:
        lines = on_machine(project, client, "docker ps --filter label=com.hashicorp.nomad.job_name=fib "
                                            "--format '{{json .}}'").splitlines()
        found[client] = [json.loads(line) for line in lines if line.strip()]
    return found


def test_fib_runs_as_containers_of_the_image_in_the_clusters_registry(project: Project,
                                                                      cluster: dict[str, Any]) -> None:
    image = cluster["images"]["fib"]
    assert cluster["registry"] == REGISTRY and image.startswith(f"{REGISTRY}/fib:")
    # The registry (TLS, the cluster's CA among the client's trusted ones) holds the build.
    tags = json.loads(on_machine(project, "client2", f"curl -sf https://{REGISTRY}/v2/fib/tags/list"))
    assert sorted(tags["tags"]) == sorted([image.rsplit(":", 1)[1], "latest"]), tags
    running = fib_containers(project)
    assert sum(len(c) for c in running.values()) == 3, running
    assert len([client for client, found in running.items() if found]) >= 2, running
    assert {c["Image"] for found in running.values() for c in found} == {image}
    labels = next(c["Labels"] for found in running.values() for c in found)
    assert "com.hashicorp.nomad.task_name=fib" in labels, labels
    answer = json.loads(project.lab("exec", "--", "curl", "-sf", "-m", "5", f"http://{LB}/fib/90").stdout)
    assert answer["fib"] == 2880067194370816120, answer
    assert answer["host"] in {f"{client}.demo" for client in CLIENTS}, answer  # the container's


def test_fib_service_consul_resolves_on_the_machines_and_in_a_container(project: Project,
                                                                       cluster: dict[str, Any]) -> None:
    for machine in ("root-server", "frontend-lb", "client1"):
        lines = on_machine(project, machine, "getent ahostsv4 fib.service.consul").splitlines()
        assert lines and {line.split()[0] for line in lines} <= set(ADDRESSES.values()), (machine, lines)
    # A container of fib's own image asks its client's forwarder (Docker's dns setting).
    lookup = ("import json, socket; print(json.dumps(sorted({a[4][0] for a in "
              "socket.getaddrinfo('fib.service.consul', 80)})))")
    found = json.loads(on_machine(project, "client2", f"docker run --rm --entrypoint /usr/bin/python3 "
                                                      f"{cluster['images']['fib']} -c \"{lookup}\""))
    running = {client for client, containers in fib_containers(project).items() if containers}
    assert set(found) == {ADDRESSES[client] for client in running}, (found, running)


def test_a_change_to_fib_py_builds_a_new_image_and_rolls_it_out(project: Project,
                                                               cluster: dict[str, Any]) -> None:
    source = project.path / "jobs" / "fib" / "fib.py"
    original = source.read_text()
    before = cluster["images"]["fib"]
    try:
        marked = original.replace('USAGE = f"GET', 'USAGE = f"(new build) GET', 1)
        assert marked != original
        source.write_text(marked)
        steps = json.loads(project.pulumi("preview", "--diff", "--json").stdout)["steps"]
        changed = {s["urn"].rsplit("::", 1)[1]: s["op"] for s in steps if s["op"] != "same"}
        assert changed == {"fib-image": "update", "fib-image-pushed": "update", "job-fib": "update"}, changed
        with load(project, LB) as result:
            project.timed("fib.py changed: pulumi up", "up", "--yes", "--skip-preview")
        print(f"new fib image rolled out under load: {result}")
        assert result.failed == 0 and result.during > 0, result
        after = project.outputs()["images"]["fib"]
        assert after != before
        running = fib_containers(project)
        assert {c["Image"] for found in running.values() for c in found} == {after}, running
        usage = json.loads(project.lab("exec", "--", "curl", "-sf", "-m", "5", f"http://{LB}/fib/").stdout)
        assert usage["usage"].startswith("(new build) GET"), usage
    finally:
        source.write_text(original)
    project.timed("fib.py back: pulumi up", "up", "--yes", "--skip-preview")
    assert project.outputs()["images"]["fib"] == before


def cadvisor_docker(project: Project, client: str) -> dict[str, Any]:
    """What the client's cAdvisor knows of Docker's containers (/api/v1.3/docker)."""
    url = f"http://{ADDRESSES[client]}:8080/api/v1.3/docker"
    return json.loads(on_machine(project, client, f"curl -sf {url}"))  # type: ignore[no-any-return]


def cadvisor_tasks(project: Project, client: str) -> dict[str, str]:
    """{container name: its Nomad task} as the client's cAdvisor lists them."""
    return {info["aliases"][0]: info["spec"]["labels"].get("com.hashicorp.nomad.task_name")
            for info in cadvisor_docker(project, client).values()}


def cadvisor_lists(project: Project, client: str, wanted: dict[str, str]) -> bool:
    return cadvisor_tasks(project, client) == wanted


def test_cadvisor_lists_fibs_containers_with_their_task_and_usage(project: Project,
                                                                  cluster: dict[str, Any]) -> None:
    for client, containers in fib_containers(project).items():
        wanted = {c["Names"]: "fib" for c in containers}
        # A container started a moment ago is found at cAdvisor's next look (about a second).
        wait_until(f"cAdvisor on {client} lists fib's containers",
                   functools.partial(cadvisor_lists, project, client, wanted), poll=0.5,
                   state=functools.partial(cadvisor_tasks, project, client))
        for info in cadvisor_docker(project, client).values():
            assert info["spec"]["memory"]["limit"] == 64 * 1024 * 1024
            assert info["stats"] and info["stats"][-1]["memory"]["usage"] > 0
        # The page of the toolchain's source build at /; the official release's web UI lists
        # Docker's containers at /docker/.
        page = on_machine(project, client, f"curl -sfL http://{ADDRESSES[client]}:8080/")
        if 'id="containers"' not in page:
            page = on_machine(project, client, f"curl -sfL http://{ADDRESSES[client]}:8080/docker/")
        assert all(c["Names"] in page for c in containers), page
