"""cluster/status (`./run status`): the APIs' JSON -> a health model, its problems, the tables
and the JSON document, the drift records of a state, and the whole module against fake Consul
and Nomad APIs on 127.0.0.1 (HTTPS with a CA of cluster/secrets.py) and a fake `pulumi`."""

from __future__ import annotations

import copy
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cluster import secrets
from cluster.status import api, cli, health
from cluster.status.drift import agent_drift
from cluster.status.tables import render_report

CONSUL_TOKEN = "0f0e0d0c-1111-4222-8333-444455556666"
NOMAD_TOKEN = "9a9b9c9d-7777-4888-8999-aaaabbbbcccc"
MANAGEMENT = "deadbeef-0000-4000-8000-000000000000"

# Canned answers, in the shapes Consul 1.14 and Nomad 1.6 give.
CONSUL: dict[str, Any] = {
    "/v1/status/leader": "10.210.1.10:8300",
    "/v1/agent/members": [
        {"Name": "root", "Addr": "10.210.1.10", "Port": 8301, "Status": 1,
         "Tags": {"build": "1.14.11:5a2ef47a", "dc": "dc1", "port": "8300", "role": "consul", "vsn": "2"}},
        {"Name": "frontend", "Addr": "10.210.1.20", "Port": 8301, "Status": 1,
         "Tags": {"build": "1.14.11:5a2ef47a", "dc": "dc1", "role": "node"}},
        {"Name": "client1", "Addr": "10.210.1.31", "Port": 8301, "Status": 1,
         "Tags": {"build": "1.14.11:5a2ef47a", "dc": "dc1", "role": "node"}},
    ],
    "/v1/catalog/services": {"consul": [], "fib": ["lb"], "internal": ["metrics"]},
    "/v1/health/service/fib": [
        {"Node": {"Node": "client1", "Address": "10.210.1.31"},
         "Service": {"ID": "_nomad-task-1", "Service": "fib", "Tags": ["lb"],
                     "Address": "10.210.1.31", "Port": 23456},
         "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                    {"CheckID": "_nomad-check-1", "Name": "fib-health", "Status": "passing"}]},
    ],
}
NOMAD: dict[str, Any] = {
    "/v1/status/leader": "10.210.1.10:4647",
    "/v1/agent/members": {"ServerName": "root", "ServerRegion": "global", "ServerDC": "dc1", "Members": [
        {"Name": "root.global", "Addr": "10.210.1.10", "Port": 4648, "Status": "alive",
         "Tags": {"build": "1.6.3", "port": "4647", "role": "nomad", "region": "global", "dc": "dc1"}}]},
    "/v1/nodes": [
        {"ID": "5c1b0a2e", "Name": "client1", "Address": "10.210.1.31", "Datacenter": "dc1",
         "Status": "ready", "SchedulingEligibility": "eligible", "Drain": False, "Version": "1.6.3"}],
    "/v1/jobs?namespace=*": [
        {"ID": "fib", "Name": "fib", "Namespace": "default", "Type": "service", "Status": "running",
         "Stop": False}],
    "/v1/job/fib/allocations?namespace=default": [
        {"ID": "8f1c2d3e-0000-4000-8000-000000000001", "NodeName": "client1", "TaskGroup": "fib",
         "ClientStatus": "running", "DesiredStatus": "run",
         "DeploymentStatus": {"Healthy": True, "Canary": False}},
        # An allocation of an older version, stopped by the last deployment: no problem.
        {"ID": "0a0b0c0d-0000-4000-8000-000000000002", "NodeName": "client1", "TaskGroup": "fib",
         "ClientStatus": "complete", "DesiredStatus": "stop", "DeploymentStatus": None}],
}
MACHINES: dict[str, Any] = {
    "root-server": {"hostname": "root.server.demo", "address": "127.0.0.1", "role": "server",
                    "ssh": "python3 -m lab ssh unit-root-server"},
    "frontend-lb": {"hostname": "frontend.lb.demo", "address": "127.0.0.2", "role": "lb",
                    "ssh": "python3 -m lab ssh unit-frontend-lb"},
    "client1": {"hostname": "client1.demo", "address": "127.0.0.3", "role": "client",
                "ssh": "python3 -m lab ssh unit-client1"},
}
LAB_ROWS = [{"name": f"unit-{n}", "address": m["address"], "running": True, "memory_bytes": 20 * 2**20}
            for n, m in MACHINES.items()]
VERSIONS = {"consul": "1.14.11", "nomad": "1.6.3"}


def report(consul: dict[str, Any] | None = None, nomad: dict[str, Any] | None = None,
           lab_rows: list[dict[str, Any]] | None = None,
           state: dict[str, Any] | None = None) -> health.Report:
    """A report from canned answers (no HTTP): the pure part of the module."""
    c, n = consul or CONSUL, nomad or NOMAD
    jobs = [health.job(j, n[f"/v1/job/{j['ID']}/allocations?namespace={j['Namespace']}"])
            for j in n["/v1/jobs?namespace=*"]]
    routes = health.RoutesView([health.route(s, c[f"/v1/health/service/{s}"])
                                for s in health.routed_services(c["/v1/catalog/services"])])
    return health.Report(
        "unit", cli.machines_of("unit", {"machines": MACHINES}, LAB_ROWS if lab_rows is None else lab_rows),
        health.consul_view(c["/v1/status/leader"], c["/v1/agent/members"]),
        health.nomad_view(n["/v1/status/leader"], n["/v1/agent/members"], n["/v1/nodes"], jobs),
        routes, VERSIONS, agent_drift(state or {}))


def changed(answers: dict[str, Any], path: str, edit: Any) -> dict[str, Any]:
    """A copy of ANSWERS whose answer at PATH is EDIT(answer) (or EDIT itself)."""
    copied = copy.deepcopy(answers)
    copied[path] = edit(copied[path]) if callable(edit) else edit
    return copied


def test_a_healthy_cluster_has_no_problem() -> None:
    r = report()
    assert r.problems() == []
    assert r.consul.leader == "10.210.1.10:8300"
    assert [m.name for m in r.consul.members if m.leader] == ["root"]
    assert [s.name for s in r.nomad.servers if s.leader] == ["root.global"]
    assert [(x.path, x.healthy_instances) for x in r.routes.routes] == [("/fib/", 1)]  # only tagged `lb`
    text = render_report(r)
    assert "HEALTHY" in text and "UNHEALTHY" not in text
    assert "DRIFT  not checked" in text
    for shown in ("root-server", "127.0.0.3", "running", "20 MiB", "root.global", "/fib/", "client1:23456",
                  "1.14.11", "1.6.3"):
        assert shown in text
    doc = r.as_json()
    assert doc["healthy"] is True and doc["problems"] == []
    assert doc["drift"] == {"checked": False, "machines": {}}
    assert doc["nomad"]["jobs"][0]["allocations"][0]["healthy"] is True
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize(("consul", "nomad", "lab_rows", "problem"), [
    (None, None, [dict(LAB_ROWS[0], running=False), *LAB_ROWS[1:]],
     "machine root-server (127.0.0.1) is not running"),
    (None, None, LAB_ROWS[1:], "machine root-server (127.0.0.1) is not running"),  # no such lab machine
    (changed(CONSUL, "/v1/status/leader", ""), None, None, "consul: no leader"),
    (changed(CONSUL, "/v1/agent/members", lambda ms: [dict(m, Status=4) if m["Name"] == "client1" else m
                                                       for m in ms]),
     None, None, "consul member client1: failed"),
    (changed(CONSUL, "/v1/agent/members", lambda ms: ms[:2]), None, None,
     "consul member client1: not a member"),
    (None, changed(NOMAD, "/v1/status/leader", ""), None, "nomad: no leader"),
    (None, changed(NOMAD, "/v1/nodes", lambda ns: [dict(ns[0], Status="down")]), None,
     "nomad node client1: down"),
    (None, changed(NOMAD, "/v1/nodes", lambda ns: [dict(ns[0], Drain=True)]), None,
     "nomad node client1: draining"),
    (None, changed(NOMAD, "/v1/nodes", lambda ns: [dict(ns[0], SchedulingEligibility="ineligible")]), None,
     "nomad node client1: not eligible for scheduling"),
    (None, changed(NOMAD, "/v1/nodes", []), None, "nomad node client1: not registered"),
    (None, changed(NOMAD, "/v1/job/fib/allocations?namespace=default",
                   lambda allocs: [dict(allocs[0], ClientStatus="failed")]), None,
     "job fib: allocation 8f1c2d3e on client1 is failed"),
    (None, changed(NOMAD, "/v1/job/fib/allocations?namespace=default",
                   lambda allocs: [dict(allocs[0], DeploymentStatus={"Healthy": False})]), None,
     "job fib: allocation 8f1c2d3e on client1 is unhealthy"),
    (changed(CONSUL, "/v1/health/service/fib", lambda es: [dict(es[0], Checks=[{"Status": "critical"}])]),
     None, None, "route /fib/: no healthy instance of fib"),
])
def test_each_unhealthy_thing_is_named(consul: dict[str, Any] | None, nomad: dict[str, Any] | None,
                                       lab_rows: list[dict[str, Any]] | None, problem: str) -> None:
    r = report(consul, nomad, lab_rows)
    assert problem in r.problems()
    text = render_report(r)
    assert "UNHEALTHY" in text and f"  - {problem}" in text
    assert r.as_json()["healthy"] is False


def test_a_down_node_is_shown_down_never_ready() -> None:
    r = report(nomad=changed(NOMAD, "/v1/nodes", lambda ns: [dict(ns[0], Status="down")]))
    rows = render_report(r).splitlines()
    row = next(line for line in rows if line.startswith("client1 ") and "1.6.3" in line)
    assert "down" in row.split() and "ready" not in row.split()


def test_a_member_that_left_is_no_problem_once_its_machine_is_gone() -> None:
    gone = {"Name": "client4", "Addr": "10.210.1.34", "Status": 3,
            "Tags": {"build": "1.14.11:x", "role": "node"}}
    r = report(consul=changed(CONSUL, "/v1/agent/members", lambda ms: [*ms, gone]))
    assert r.problems() == [] and "left" in render_report(r)
    # ... but a machine of the stack that left is.
    r = report(consul=changed(CONSUL, "/v1/agent/members",
                              lambda ms: [dict(m, Status=3) if m["Name"] == "client1" else m for m in ms]))
    assert "consul member client1: left" in r.problems()


def test_a_stopped_job_and_a_stack_without_lab_state_are_no_problem() -> None:
    stopped = changed(NOMAD, "/v1/jobs?namespace=*", lambda js: [dict(js[0], Status="dead", Stop=True)])
    stopped = changed(stopped, "/v1/job/fib/allocations?namespace=default",
                      lambda allocs: [dict(a, ClientStatus="complete", DesiredStatus="stop") for a in allocs])
    machines = cli.machines_of("unit", {"machines": MACHINES}, None)  # not a lab stack
    assert [m.running for m in machines] == [None, None, None]
    r = report(nomad=stopped)
    r.machines = machines
    assert r.problems() == []


STATE: dict[str, Any] = {"version": 3, "deployment": {"resources": [
    {"urn": "urn:pulumi:unit::hashicluster::pulumi:pulumi:Stack::hashicluster-unit",
     "type": "pulumi:pulumi:Stack"},
    {"urn": "urn:pulumi:unit::hashicluster::hashicluster:machines:NspawnMachine::client1",
     "type": "hashicluster:machines:NspawnMachine"},
    {"urn": "urn:pulumi:unit::hashicluster::hashicluster:machines:NspawnMachine$hashicluster:drift:AgentState"
            "::client1-drift",
     "type": "hashicluster:drift:AgentState",
     "parent": "urn:pulumi:unit::hashicluster::hashicluster:machines:NspawnMachine::client1",
     "outputs": {"drift": {"nomad": ["/etc/nomad.d/client.hcl differs from the stack's"], "consul": []}}},
    {"urn": "urn:pulumi:unit::hashicluster::pulumi-python:dynamic:Resource::root-drift",
     "type": "pulumi-python:dynamic:Resource$hashicluster:drift:AgentState",
     "inputs": {"machine": "root-server"}, "outputs": {"drift": {}}},
]}}


def test_drift_lists_each_machines_reasons_from_the_state() -> None:
    found = agent_drift(STATE)
    assert found.checked
    assert found.machines == {"client1": {"nomad": ["/etc/nomad.d/client.hcl differs from the stack's"],
                                          "consul": []},
                              "root-server": {}}
    r = report(state=STATE)
    assert r.problems() == ["drift on client1: nomad: /etc/nomad.d/client.hcl differs from the stack's"]
    assert "client.hcl differs" in render_report(r)


def test_drift_without_records_is_not_checked_and_no_problem() -> None:
    state = copy.deepcopy(STATE)
    state["deployment"]["resources"] = state["deployment"]["resources"][:2]
    assert agent_drift(state) == health.Drift(checked=False, machines={})
    assert agent_drift({}).checked is False
    clean = copy.deepcopy(STATE)
    clean["deployment"]["resources"][2]["outputs"]["drift"] = {"nomad": [], "consul": []}
    r = report(state=clean)
    assert r.problems() == [] and "DRIFT  none" in render_report(r)


# --- the module end to end, against fakes on loopback -------------------------------------


class FakeApi(BaseHTTPRequestHandler):
    """A fake Consul or Nomad HTTP API: canned JSON by path (query included); 403 without the
    expected token header, 404 for any other path. Records every path asked for."""

    answers: ClassVar[dict[str, Any]] = {}
    header = ""
    token = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.token and self.headers.get(self.header) != self.token:
            self.send_error(403, "Permission denied")
            return
        if self.path not in self.answers:
            self.send_error(404)
            return
        body = json.dumps(self.answers[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def fake_api(answers: dict[str, Any], header: str, token: str, context: ssl.SSLContext | None
             ) -> tuple[ThreadingHTTPServer, list[str]]:
    seen: list[str] = []
    handler = type("FakeApiHandler", (FakeApi,), {"answers": answers, "header": header, "token": token,
                                                   "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def tls(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """The cluster's CA (PEM) and a server context with a certificate it signed for 127.0.0.1."""
    ca_key, ca_pem = secrets.make_ca("hashicluster unit CA")
    key, cert = secrets.issue_certificate(ca_key, ca_pem, secrets.node_names(
        "root.server.demo", "root", "127.0.0.1", ["server.dc1.consul"]))
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "cert.pem").write_text(cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    return ca_pem, context


@pytest.fixture
def fakes(tls: tuple[str, ssl.SSLContext]) -> Iterator[dict[str, Any]]:
    """Fake Consul and Nomad APIs over HTTPS, and the stack outputs that point at them."""
    ca_pem, context = tls
    consul, consul_seen = fake_api(CONSUL, "X-Consul-Token", CONSUL_TOKEN, context)
    nomad, nomad_seen = fake_api(NOMAD, "X-Nomad-Token", NOMAD_TOKEN, context)
    outputs = {"machines": MACHINES, "caCertificate": ca_pem,
               "consulUi": f"https://127.0.0.1:{consul.server_address[1]}/ui/",
               "nomadUi": f"https://127.0.0.1:{nomad.server_address[1]}/ui/",
               "consulVersion": "1.14.11", "nomadVersion": "1.6.3",
               "consulManagementToken": MANAGEMENT, "nomadManagementToken": MANAGEMENT,
               "statusConsulToken": CONSUL_TOKEN, "statusNomadToken": NOMAD_TOKEN}
    yield {"outputs": outputs, "consul_seen": consul_seen, "nomad_seen": nomad_seen}
    consul.shutdown()
    nomad.shutdown()


def test_the_apis_are_read_with_the_ca_and_the_read_only_tokens(fakes: dict[str, Any]) -> None:
    r = cli.build_report("unit", fakes["outputs"], LAB_ROWS, {})
    assert r.consul.error is None and r.nomad.error is None and r.routes.error is None
    assert r.problems() == []
    assert "/v1/health/service/fib" in fakes["consul_seen"]
    assert "/v1/health/service/internal" not in fakes["consul_seen"]  # not tagged `lb`
    assert "/v1/job/fib/allocations?namespace=default" in fakes["nomad_seen"]


def test_a_wrong_token_or_another_ca_is_an_error_naming_no_secret(fakes: dict[str, Any]) -> None:
    outputs = dict(fakes["outputs"], statusNomadToken=MANAGEMENT)
    r = cli.build_report("unit", outputs, LAB_ROWS, {})
    assert r.nomad.error is not None and "HTTP 403" in r.nomad.error
    assert any(p.startswith("nomad: GET https://127.0.0.1:") for p in r.problems())
    _key, other_ca = secrets.make_ca("another CA")
    r = cli.build_report("unit", dict(fakes["outputs"], caCertificate=other_ca), LAB_ROWS, {})
    assert r.consul.error is not None and "CERTIFICATE_VERIFY_FAILED" in r.consul.error
    for shown in (render_report(r), json.dumps(r.as_json()), repr(cli.consul_api(fakes["outputs"], []))):
        assert CONSUL_TOKEN not in shown and NOMAD_TOKEN not in shown and MANAGEMENT not in shown


def test_a_stack_with_acls_but_no_status_token_says_how_to_get_one(fakes: dict[str, Any]) -> None:
    outputs = {k: v for k, v in fakes["outputs"].items() if not k.startswith("status")}
    r = cli.build_report("unit", outputs, LAB_ROWS, {})
    assert "statusConsulToken" in str(r.consul.error) and "statusConsulToken" in str(r.routes.error)
    assert "statusNomadToken" in str(r.nomad.error) and "./run up" in str(r.nomad.error)
    assert fakes["consul_seen"] == [] and fakes["nomad_seen"] == []  # never tried without a token


def test_security_off_reads_plain_http_without_tokens() -> None:
    consul, _ = fake_api(CONSUL, "X-Consul-Token", "", None)
    nomad, seen = fake_api(NOMAD, "X-Nomad-Token", "", None)
    try:
        outputs = {"machines": MACHINES, "consulVersion": "1.14.11", "nomadVersion": "1.6.3",
                   "consulUi": f"http://127.0.0.1:{consul.server_address[1]}/ui/",
                   "nomadUi": f"http://127.0.0.1:{nomad.server_address[1]}/ui/"}
        r = cli.build_report("unit", outputs, LAB_ROWS, {})
        assert r.problems() == [] and "/v1/nodes" in seen
    finally:
        consul.shutdown()
        nomad.shutdown()


def test_an_unreachable_server_is_skipped_for_the_next() -> None:
    bases = api.bases("https://10.210.1.10:8501/ui/", ["10.210.1.10", "10.210.1.11"])
    assert bases == ["https://10.210.1.10:8501", "https://10.210.1.11:8501"]
    nomad, _ = fake_api(NOMAD, "X-Nomad-Token", "", None)
    closed, _ = fake_api({}, "", "", None)
    closed.shutdown()
    closed.server_close()  # nothing listens on its port any more
    try:
        reader = api.Api([f"http://127.0.0.1:{closed.server_address[1]}",
                          f"http://127.0.0.1:{nomad.server_address[1]}"], "X-Nomad-Token")
        assert reader.get("/v1/status/leader") == "10.210.1.10:4647"
    finally:
        nomad.shutdown()


FAKE_PULUMI = """#!{python}
# A fake `pulumi` for the status tests: prints the outputs and the state it was given.
import os, sys
args = sys.argv[1:]
if args[:3] == ["stack", "output", "--json"] and "--show-secrets" in args:
    print(open(os.environ["FAKE_PULUMI_OUTPUTS"]).read())
elif args[:2] == ["stack", "export"]:
    print(open(os.environ["FAKE_PULUMI_STATE"]).read())
else:
    sys.exit("fake pulumi: unexpected " + " ".join(args))
"""


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(tmp_path / "outputs.json"))
    (tmp_path / "state.json").write_text(json.dumps(STATE))
    return tmp_path


def test_the_module_prints_json_or_tables_and_exits_by_health(
        fakes: dict[str, Any], fake_pulumi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fake_pulumi / "outputs.json").write_text(json.dumps(fakes["outputs"]))
    # The state holds drift on client1: unhealthy.
    assert cli.main(["--stack", "unit", "--json", "--machines", "none"]) == 1
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["healthy"] is False and doc["drift"]["checked"] is True
    assert set(doc) >= {"machines", "consul", "nomad", "routes", "versions", "drift", "problems"}
    assert [m["running"] for m in doc["machines"]] == [None, None, None]
    assert CONSUL_TOKEN not in out and NOMAD_TOKEN not in out and MANAGEMENT not in out
    # Without drift records: all is well.
    (fake_pulumi / "state.json").write_text(json.dumps({"deployment": {"resources": []}}))
    assert cli.main(["--stack", "unit", "--machines", "none"]) == 0
    out = capsys.readouterr().out
    assert "HEALTHY" in out and "DRIFT  not checked" in out
    assert CONSUL_TOKEN not in out and NOMAD_TOKEN not in out and MANAGEMENT not in out


def test_a_stack_without_outputs_exits_2(fake_pulumi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fake_pulumi / "outputs.json").write_text("{}")
    assert cli.main(["--stack", "unit", "--machines", "none"]) == 2
    assert "has no cluster outputs" in capsys.readouterr().err
