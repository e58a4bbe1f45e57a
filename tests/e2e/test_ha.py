"""High availability and day-2 changes on a lab cluster of its own: 3 servers, the load
balancer and 3 clients (stack `ha`, network 10.210.7.0/24).

In order, with fib requests flowing through the load balancer during each change and every
failure counted: a server machine is stopped and brought back; the clients go 3 -> 4 -> 2;
Nomad and Consul roll to the toolchain's other patch releases one machine at a time; and
`pulumi destroy` deletes the lab machines without making their agents leave one by one
first (the removed clients above did leave). The scenarios build on each other, so they
share the cluster and run in this order.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cluster.services.acl import parse_nomad_tokens
from lab.worktree import lab_stack_config

from ..waiting import wait_until
from .conftest import ROOT, TIMINGS, Project, lab_machines, on_machine, project_copy
from .load import load

pytestmark = pytest.mark.e2e

STACK = "ha"
NETWORK = "10.210.7.0/24"
SERVERS = {"10.210.7.10": "root-server", "10.210.7.11": "server2", "10.210.7.12": "server3"}
LB = "10.210.7.20"
CLIENTS = {"10.210.7.31": "client1", "10.210.7.32": "client2"}  # left after scaling 3 -> 4 -> 2
ROOT_SERVER = "10.210.7.10"
# The toolchain's second patch releases (`python3 -m toolchain ensure nomad@1.6.2 consul@1.14.8`).
OTHER_NOMAD, OTHER_CONSUL = "1.6.2", "1.14.8"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    config = lab_stack_config(ROOT, NETWORK)
    assert "hashicluster:servers: 1\n" in config
    config = config.replace("hashicluster:servers: 1\n", "hashicluster:servers: 3\n")
    path, env = project_copy(tmp_path_factory.mktemp("ha"), STACK, config, "ha-passphrase")
    proj = Project(path, env, stack=STACK, timings_file=TIMINGS.with_name("hashicluster-ha-timings.json"))
    for machine in lab_machines(proj):  # left by an interrupted run
        proj.lab("down", machine)
    proj.pulumi("stack", "init")
    proj.timed("up: 3 servers, 3 clients", "up", "--yes", "--skip-preview")
    yield proj
    if not proj.destroyed:
        proj.pulumi("destroy", "--yes", check=False)


CONSUL = "$CONSUL_HTTP_ADDR"  # on a machine: its Consul agent's API (see conftest.USE_API)


def nomad(address: str = ROOT_SERVER) -> str:
    return f"$NOMAD_SCHEME://{address}:4646"


def api(ha: Project, url: str, via: str | None = None) -> Any:
    """A JSON GET from a machine of the cluster (None when none answers): from VIA, or from the
    first server that answers (a server's scripts hold the management tokens; a client's
    token is too narrow for these reads)."""
    for machine in [via] if via else list(SERVERS.values()):
        out = on_machine(ha, machine, f"api -m 3 {url}", check=False)
        if out.strip():
            return json.loads(out)
    return None


def leader(ha: Project, product: str) -> str | None:
    """The address of the product's leader as a client sees it, or None."""
    url = CONSUL if product == "consul" else nomad("10.210.7.31")
    answer = api(ha, f"{url}/v1/status/leader", via="client1")  # no token needed
    return answer.rsplit(":", 1)[0] if answer else None


def servers_healthy(ha: Project) -> bool:
    reports = [api(ha, f"{CONSUL}/v1/operator/autopilot/health"),
               api(ha, f"{nomad()}/v1/operator/autopilot/health")]
    return all(report and report["Healthy"] and len(report["Servers"]) == 3
               and all(s["SerfStatus"] == "alive" for s in report["Servers"])
               for report in reports)


def fib_allocations(ha: Project) -> list[dict[str, Any]]:
    allocs = api(ha, f"{nomad()}/v1/job/fib/allocations") or []
    return [a for a in allocs if a["ClientStatus"] == "running"]


def lb_upstreams(ha: Project) -> list[str]:
    """The instances (address:port) the load balancer's nginx routes to now."""
    conf = on_machine(ha, "frontend-lb", "cat /etc/nginx/conf.d/services.conf", check=False)
    return re.findall(r"server (\S+) max_fails", conf)


def fib_on_clients(ha: Project) -> bool:
    """fib runs its 3 instances on CLIENTS only."""
    allocs = fib_allocations(ha)
    return len(allocs) == 3 and {a["NodeName"] for a in allocs} <= set(CLIENTS.values())


def routes_to_clients(ha: Project) -> bool:
    """The load balancer routes fib to 3 instances, all on CLIENTS."""
    routes = lb_upstreams(ha)
    return len(routes) == 3 and {r.rsplit(":", 1)[0] for r in routes} <= set(CLIENTS)


def test_three_servers_with_one_leader(ha: Project) -> None:
    for product, url in [("consul", CONSUL), ("nomad", nomad())]:
        peers = api(ha, f"{url}/v1/operator/raft/configuration")["Servers"]
        assert sorted(p["Address"].rsplit(":", 1)[0] for p in peers) == sorted(SERVERS), product
        assert all(p["Voter"] for p in peers), peers
        assert sum(p["Leader"] for p in peers) == 1, peers
    assert len(fib_allocations(ha)) == 3
    status = ha.lab("exec", "--", "curl", "-sf", "-m", "5", f"http://{LB}/fib/10").stdout
    assert json.loads(status)["fib"] == 55


def test_a_stopped_server_machine_leaves_a_leader_and_fib_answering(ha: Project) -> None:
    gone = leader(ha, "consul")  # the hardest case: the machine that leads
    assert gone in SERVERS
    machine = f"{STACK}-{SERVERS[gone]}"
    with load(ha, LB) as result:
        ha.lab("stop", machine)
        took = wait_until(f"a Consul and a Nomad leader other than the stopped {gone}",
                          lambda: all(leader(ha, p) not in (None, gone) for p in ("consul", "nomad")))
        # fib keeps answering with the machine down
        result.wait_for_requests(20, f"with {machine} down and new leaders elected")
        ha.lab("up", machine, "--address", gone)
        back = wait_until("all 3 Consul and Nomad servers healthy again", lambda: servers_healthy(ha))
    print(f"server stop: new leaders after {took:.1f}s, 3 healthy servers {back:.1f}s after the "
          f"machine was back; load: {result}")
    assert result.failed == 0, result
    ha.pulumi("preview", "--expect-no-changes")


def test_scaling_clients_3_4_2_fails_no_request(ha: Project) -> None:
    with load(ha, LB) as result:
        ha.pulumi("config", "set", "clients", "4")
        ha.timed("up: clients 3 -> 4", "up", "--yes", "--skip-preview")
        nodes = api(ha, f"{nomad()}/v1/nodes")
        assert sorted(n["Name"] for n in nodes if n["Status"] == "ready") == [
            "client1", "client2", "client3", "client4"]
        ha.pulumi("config", "set", "clients", "2")
        ha.timed("up: clients 4 -> 2", "up", "--yes", "--skip-preview")
        # fib's instances of the removed clients run again on the others, and the load
        # balancer routes to those only; requests go on through the new routes.
        wait_until("3 running fib allocations, all on client1 and client2", lambda: fib_on_clients(ha))
        wait_until("the load balancer routes fib to 3 instances on client1 and client2 only",
                   lambda: routes_to_clients(ha), state=lambda: lb_upstreams(ha))
        result.wait_for_requests(20, "with fib on client1 and client2 only")
    print(f"scaling 3 -> 4 -> 2: {result}")
    # The removed clients were drained (fib moved), purged from Nomad and left Consul.
    nodes = api(ha, f"{nomad()}/v1/nodes")
    assert sorted(n["Name"] for n in nodes) == ["client1", "client2"]
    allocs = fib_allocations(ha)
    assert len(allocs) == 3 and {a["NodeName"] for a in allocs} <= {"client1", "client2"}
    members = {m["Name"]: m["Status"] for m in api(ha, f"{CONSUL}/v1/agent/members")}
    assert members["client3"] == members["client4"] == 3, members  # 3: left
    assert result.failed == 0, result


ROLL_LINE = re.compile(r"^(\S+Z) (\S+): (restarting (\w+)|(\w+) healthy|leads the (\w+) servers.*)$")


def roll_log(ha: Project) -> list[tuple[str, str, datetime, datetime]]:
    """(machine, product, restart, healthy) of every restart the roll steps logged, in order."""
    state = json.loads(ha.pulumi("stack", "export").stdout)
    restarts: dict[tuple[str, str], datetime] = {}
    done = []
    for resource in state["deployment"]["resources"]:
        if not re.search(r"-roll(-leader)?$", resource["urn"]):
            continue
        for line in (resource.get("outputs", {}).get("stdout") or "").splitlines():
            match = ROLL_LINE.match(line)
            if not match or match[6]:
                continue
            when = datetime.fromisoformat(match[1].replace("Z", "+00:00"))
            if match[4]:
                restarts[(match[2], match[4])] = when
            else:
                done.append((match[2], match[5], restarts.pop((match[2], match[5])), when))
    assert not restarts, f"restarted but never healthy: {restarts}"
    return sorted(done, key=lambda r: r[2])


def test_rolling_upgrade_one_machine_at_a_time(ha: Project) -> None:
    leaders = {p: SERVERS[leader(ha, p) or ""] for p in ("consul", "nomad")}
    ha.pulumi("config", "set", "--path", "nomad.version", OTHER_NOMAD)
    ha.pulumi("config", "set", "--path", "consul.version", OTHER_CONSUL)
    # The preview lists the machines' turns in the order they will come.
    steps = json.loads(ha.pulumi("preview", "--json").stdout)["steps"]
    turns = [s["urn"].rsplit("::", 1)[1] for s in steps if re.search(r"-roll(-leader)?$", s["urn"])]
    assert turns == ["root-server-roll", "server2-roll", "server3-roll", "root-server-roll-leader",
                     "server2-roll-leader", "server3-roll-leader", "frontend-lb-roll", "client1-roll",
                     "client2-roll"], turns
    with load(ha, LB) as result:
        ha.timed("up: roll Nomad and Consul", "up", "--yes", "--skip-preview")
    print(f"rolling upgrade: {result}")
    log = roll_log(ha)
    for machine, product, start, end in log:
        print(f"  {start:%H:%M:%S.%f} .. {end:%H:%M:%S.%f} {machine} {product}")
    # Every agent restarted once, never two at the same time.
    assert sorted((m, p) for m, p, _, _ in log) == sorted(
        [(s, p) for s in SERVERS.values() for p in ("consul", "nomad")]
        + [("frontend-lb", "consul")] + [(c, p) for c in ("client1", "client2") for p in ("consul", "nomad")])
    for (_, _, _, end), (_, _, start, _) in itertools.pairwise(log):
        assert start >= end
    # The servers first, each product's leader last among them, then the rest.
    machines = [m for m, _, _, _ in log]
    assert set(machines[:6]) == set(SERVERS.values())
    for product, was_leading in leaders.items():
        assert [m for m, p, _, _ in log if p == product and m in SERVERS.values()][-1] == was_leading
    # The new versions run everywhere.
    members = api(ha, f"{CONSUL}/v1/agent/members")
    assert {m["Tags"]["build"].split(":")[0] for m in members if m["Status"] == 1} == {OTHER_CONSUL}
    nodes = api(ha, f"{nomad()}/v1/nodes")
    assert {n["Version"] for n in nodes} == {OTHER_NOMAD}
    servers = api(ha, f"{nomad()}/v1/agent/members")["Members"]
    assert {s["Tags"]["build"] for s in servers} == {OTHER_NOMAD}
    assert result.failed == 0, result
    ha.pulumi("preview", "--expect-no-changes")


def lab_curl(ha: Project, *args: str) -> tuple[int, str]:
    """curl from the lab network (outside the cluster's machines): (exit code, HTTP status)."""
    proc = ha.lab("exec", "--", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", *args,
                  check=False)
    return proc.returncode, proc.stdout.strip()


def test_the_apis_refuse_anonymous_calls_and_clients_without_the_ca(ha: Project, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(json.loads(ha.pulumi("stack", "output", "--json").stdout)["caCertificate"])
    consul, nomad_url = f"https://{ROOT_SERVER}:8501", f"https://{ROOT_SERVER}:4646"
    # With the CA but no token: refused.
    assert lab_curl(ha, "--cacert", str(ca), f"{consul}/v1/agent/self") == (0, "403")
    assert lab_curl(ha, "--cacert", str(ca), f"{nomad_url}/v1/jobs") == (0, "403")
    assert lab_curl(ha, "--cacert", str(ca), f"{nomad_url}/v1/nodes") == (0, "403")
    # Without the CA: no TLS session at all (curl: 60, the certificate cannot be checked).
    assert lab_curl(ha, f"{consul}/v1/status/leader")[0] == 60
    assert lab_curl(ha, f"{nomad_url}/v1/status/leader")[0] == 60
    # Plain HTTP: Consul's port is closed, Nomad speaks only TLS.
    assert lab_curl(ha, f"http://{ROOT_SERVER}:8500/v1/status/leader")[0] == 7
    assert lab_curl(ha, f"http://{ROOT_SERVER}:4646/v1/status/leader")[1] != "200"
    # A machine's own token is narrow: no jobs.
    jobs = on_machine(ha, "client1", f"api -o /dev/null -w '%{{http_code}}' {nomad()}/v1/jobs", check=False)
    assert jobs == "403", jobs


def test_a_node_without_the_gossip_key_cannot_join(ha: Project) -> None:
    """A second Consul agent on client2, without the gossip key (and without a certificate),
    tries to join the servers: the cluster never lists it."""
    intruder = ("consul agent -node intruder -data-dir /tmp/intruder -bind 10.210.7.32 "
                "-serf-lan-port 18301 -serf-wan-port 18302 -server-port 18300 -http-port 18500 "
                "-dns-port -1 -grpc-port -1 -retry-join 10.210.7.10 -log-file /tmp/intruder.log")
    ssh = f"{STACK}-client2"
    ha.lab("ssh", ssh, f"rm -rf /tmp/intruder; (setsid {intruder} >/tmp/intruder.log 2>&1 &)")

    def intruder_log() -> str:
        return ha.lab("ssh", ssh, "cat /tmp/intruder.log", check=False).stdout

    try:
        # Its first attempt to join is over (Consul's retry join logs how it ended).
        wait_until("the intruder's first attempt to join the servers has ended",
                   lambda: re.search(r"Join cluster (failed|completed)", intruder_log()),
                   state=lambda: intruder_log()[-2000:])
        members = {m["Name"] for m in api(ha, f"{CONSUL}/v1/agent/members")}
        assert "intruder" not in members and "client2" in members
        # It runs, it tried, and it is alone.
        log = intruder_log()
        assert "Join cluster failed" in log, log[-2000:]
        alone = ha.lab("ssh", ssh, "consul members -http-addr=127.0.0.1:18500").stdout
        assert "intruder" in alone and "root" not in alone, alone
    finally:
        ha.lab("ssh", ssh, "pkill -f 'consul agent -node intruder'; rm -rf /tmp/intruder", check=False)


def secret_values(ha: Project) -> set[str]:
    """Every secret of the stack, from the state with --show-secrets: the gossip keys, the
    tokens, the private keys (their base64 lines), the Nomad tokens the nomad-acl step made."""
    # Not through ha.pulumi: this one command prints the secrets on purpose, and stays out of
    # the transcript the test searches.
    state = json.loads(ha.exec("pulumi", "stack", "export", "--show-secrets", "--stack", ha.stack,
                               "--non-interactive").stdout)

    def plain(value: Any) -> Any:
        return json.loads(value["plaintext"]) if isinstance(value, dict) and "plaintext" in value else value

    found: set[str] = set()
    for resource in state["deployment"]["resources"]:
        outputs = {k: plain(v) for k, v in resource.get("outputs", {}).items()}
        for key, value in outputs.items():
            secret = key.endswith(("_token", "_gossip_key")) or key in ("key_pem", "ca_key_pem")
            if isinstance(value, str) and secret:
                found |= ({line for line in value.splitlines() if line and "-----" not in line}
                          if "PRIVATE KEY" in value else {value})
        if resource["urn"].endswith("::nomad-acl"):  # `KIND SECRET` lines among others
            found |= set(parse_nomad_tokens(outputs["stdout"]).values())
    return found


def test_no_secret_in_output_state_logs_or_process_lists(ha: Project) -> None:
    secrets = secret_values(ha)
    assert len(secrets) >= 12, "the gossip keys, the tokens and the private keys"
    texts = {"every pulumi command's output": "\n".join(ha.transcript),
             "stack outputs": ha.pulumi("stack", "output", "--json").stdout,
             "preview --diff": ha.pulumi("preview", "--diff").stdout}
    backend = Path(ha.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    texts |= {str(f): f.read_text(errors="replace") for f in backend.rglob("*") if f.is_file()}
    for machine in lab_machines(ha):
        texts[f"processes on {machine}"] = ha.lab("ssh", machine, "ps -eo args").stdout
        texts[f"journal of {machine}"] = ha.lab("ssh", machine, "journalctl --no-pager -q").stdout
    leaks = {name: sorted(s[:8] for s in secrets if s in text) for name, text in texts.items()}
    assert {name: hits for name, hits in leaks.items() if hits} == {}
    # The secrets are in the state, encrypted (Pulumi's secret marker with a ciphertext).
    assert '"ciphertext"' in ha.pulumi("stack", "export").stdout


def test_destroy_deletes_the_lab_machines_without_removing_their_agents_first(ha: Project) -> None:
    machines = lab_machines(ha)
    assert len(machines) == 6, machines  # 3 servers, the load balancer, 2 clients
    out = ha.timed("destroy", "destroy", "--yes", "--skip-preview").stdout
    ha.destroyed = True
    deleted = [line for line in out.splitlines() if " deleted (" in line]
    # The steps on the machines are deleted with the stack's Teardown: their removal scripts
    # (drain and purge a Nomad node, make a Consul agent leave, uninstall) do not run, so
    # Pulumi prints none of their output ...
    step = re.compile(r"Command ((?:client\d|frontend-lb|server\d|root-server)-(?:nomad|consul)) deleted")
    steps = {m[1]: line for line in deleted if (m := step.search(line))}
    assert {"client1-nomad", "client2-nomad", "client1-consul", "frontend-lb-consul"} <= set(steps), deleted
    for name, line in steps.items():
        assert re.search(r"deleted \([\d.]+m?s\)\s*$", line), (name, line)  # nothing printed
    assert re.search(r"hashicluster:index:Teardown ha deleting", out), out
    # ... and the machines themselves go.
    gone = [line for line in deleted if re.search(r"-lab deleted", line)]
    assert len(gone) == len(machines) and all("is gone" in line for line in gone), gone
    assert lab_machines(ha) == []
