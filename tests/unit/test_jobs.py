"""The example jobs and the NomadJob provider, without a cluster.

- jobs/fib/fib.py: the Fibonacci logic, request routing, and a real server on loopback;
- jobs/build.py: the embedded copies are up to date and read back verbatim (HCL escaping);
- the job files parse with the toolchain's nomad binary (skipped when it is not installed);
- cluster/jobs.py: health assessment, diff, check, read and delete over a fake Nomad API.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import struct_pb2  # type: ignore[import-untyped]
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

from cluster import jobs

from ..waiting import HANG_GUARD, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIB_PY = ROOT / "jobs" / "fib" / "fib.py"
FIB_HCL = ROOT / "jobs" / "fib.nomad.hcl"  # in containers: the image built from jobs/fib/
FIB_RAW_HCL = ROOT / "jobs" / "fib-raw-exec.nomad.hcl"  # without: fib.py embedded, run by raw_exec
ECHO_PY = ROOT / "tests" / "e2e" / "fixtures" / "echo.py"


def load(path: Path) -> ModuleType:
    """A script of jobs/ as a module (jobs/ is no package)."""
    name = f"hashicluster_jobs_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fib = load(FIB_PY)
build = load(ROOT / "jobs" / "build.py")


# --- fib.py --------------------------------------------------------------------------------


def test_fib_values() -> None:
    assert [fib.fib(n) for n in range(11)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    assert fib.fib(100) == 354224848179261915075
    assert len(str(fib.fib(fib.MAX_N))) == 2090
    with pytest.raises(ValueError):
        fib.fib(-1)


@pytest.mark.parametrize("target", ["/fib/10", "/fib?n=10", "/fib/?n=10", "/10", "/?n=10",
                                    "/fib/010", "/10/"])
def test_route_computes_with_or_without_the_prefix(target: str) -> None:
    reply = fib.route(target, "alloc-1", "client1")
    assert (reply.status, reply.body) == (200, {"n": 10, "fib": 55, "instance": "alloc-1",
                                                "host": "client1"})


@pytest.mark.parametrize("target", ["/health", "/fib/health", "/health/"])
def test_route_health(target: str) -> None:
    assert fib.route(target, "a", "h").body == {"status": "ok", "instance": "a"}


@pytest.mark.parametrize(("target", "status", "error"), [
    ("/fib/abc", 400, "must be an integer"),
    ("/fib/-1", 400, "must be an integer"),
    ("/fib/1.5", 400, "must be an integer"),
    ("/fib?n=", 400, "must be an integer"),
    ("/fib/10001", 400, "at most 10000"),
    ("/fib/" + "9" * 5000, 400, "at most 10000"),
    ("/fib/%C2%B2", 400, "must be an integer"),
    ("/a/b", 404, "no such path"),
    ("/fib/1/2", 404, "no such path"),
])
def test_route_rejects_bad_input(target: str, status: int, error: str) -> None:
    reply = fib.route(target, "a", "h")
    assert reply.status == status
    assert error in reply.body["error"]


def test_route_root_gives_usage() -> None:
    for target in ("/", "/fib", "/fib/"):
        reply = fib.route(target, "a", "h")
        assert reply.status == 200 and "usage" in reply.body


def test_listen_address_prefers_fib_then_nomad_variables() -> None:
    assert fib.listen_address({}) == ("127.0.0.1", 8080)
    nomad = {"NOMAD_IP_http": "10.210.1.31", "NOMAD_PORT_http": "23456"}
    assert fib.listen_address(nomad) == ("10.210.1.31", 23456)
    assert fib.listen_address({**nomad, "FIB_BIND": "0.0.0.0", "FIB_PORT": "8080"}) == \
        ("0.0.0.0", 8080)
    with pytest.raises(SystemExit, match="port"):
        fib.listen_address({"NOMAD_PORT_http": "http"})
    assert fib.instance_name({"NOMAD_ALLOC_ID": "abc"}, "h", 1) == "abc"
    assert fib.instance_name({}, "h", 1) == "h:1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_server_answers_logs_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "NOMAD_IP_http": "127.0.0.1", "NOMAD_PORT_http": str(port),
           "NOMAD_ALLOC_ID": "alloc-xyz"}
    proc = subprocess.Popen([sys.executable, str(FIB_PY)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    stdout = proc.stdout
    assert stdout is not None
    lines: list[str] = []
    # The server logs a request after its reply went out, so the client can see the reply
    # before the line is written: the lines are collected as they come and waited for.
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in stdout),
                              daemon=True)
    reader.start()

    def wait_for_lines(what: str, count: int) -> None:
        wait_until(f"{count} lines of fib.py's log with {what!r}",
                   lambda: sum(what in line for line in list(lines)) >= count, poll=0.05,
                   state=lambda: lines)

    try:
        answers: list[tuple[int, Any]] = []

        def answers_health() -> bool:
            answers.append(get(f"http://127.0.0.1:{port}/health"))  # OSError until it listens
            return True

        wait_until("fib.py answering /health", answers_health, poll=0.05, ignore=(OSError,))
        assert answers[-1] == (200, {"status": "ok", "instance": "alloc-xyz"})
        status, body = get(f"http://127.0.0.1:{port}/fib/20")
        assert (status, body["fib"], body["instance"]) == (200, 6765, "alloc-xyz")
        assert get(f"http://127.0.0.1:{port}/fib/x")[0] == 400
        wait_for_lines('"GET /', 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HANG_GUARD)
        reader.join(timeout=HANG_GUARD)
    assert proc.returncode == 0, lines
    assert lines[0].startswith("fib: instance alloc-xyz listening on http://127.0.0.1:")
    # Each request is logged once; the handlers' threads may write their lines in any order.
    assert sorted(line.split('"')[1] for line in lines if '"GET /' in line) == \
        ["GET /fib/20", "GET /fib/x", "GET /health"], lines
    assert lines[-2:] == ["fib: SIGTERM, shutting down", "fib: stopped"]


def test_echo_fixture_answers_any_path_on_the_address_it_is_given() -> None:
    """The e2e echo job's server (it runs in a container there: ECHO_BIND/ECHO_PORT win)."""
    port = free_port()
    env = {**os.environ, "NOMAD_IP_http": "192.0.2.1", "NOMAD_PORT_http": "1",
           "ECHO_BIND": "127.0.0.1", "ECHO_PORT": str(port), "NOMAD_ALLOC_ID": "alloc-echo"}
    proc = subprocess.Popen([sys.executable, str(ECHO_PY)], env=env, stdout=subprocess.DEVNULL)
    replies: list[tuple[int, str]] = []

    def answers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/some/path?x=1", timeout=5) as reply:
            replies.append((reply.status, reply.read().decode()))
        return True

    try:
        wait_until("echo.py answering", answers, poll=0.05, ignore=(OSError,))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HANG_GUARD)
    assert replies[-1] == (200, "echo from alloc-echo path=/some/path?x=1\n")
    assert proc.returncode == 0


# --- build.py: the embedded copies ---------------------------------------------------------


def test_every_job_file_is_up_to_date() -> None:
    files = build.job_files()
    assert {f.name for f in files} >= {"fib-raw-exec.nomad.hcl", "echo.nomad.hcl"}
    for path in files:
        text = path.read_text()
        assert build.render(text, path) == text, f"{path} is stale: run python3 jobs/build.py"
    assert build.main(["--check"]) == 0


def test_embedded_copy_equals_the_source() -> None:
    for job, source, key in ((FIB_RAW_HCL, FIB_PY, "fib/fib.py"),
                             (ROOT / "tests/e2e/fixtures/echo.nomad.hcl", ECHO_PY, "echo.py")):
        assert build.embedded(job.read_text()) == {key: source.read_text()}
    assert build.embedded(FIB_HCL.read_text()) == {}  # its image carries fib.py


TRICKY = 'a = "${HOME} $${x} %{ if } %%{y} {{ go }} $5 %d"\n'


def test_escape_round_trip() -> None:
    assert build.escape(TRICKY) == 'a = "$${HOME} $$${x} %%{ if } %%%{y} {{ go }} $5 %d"\n'
    assert build.unescape(build.escape(TRICKY)) == TRICKY


def job_with(source_name: str, delimiters: tuple[str, str] = ("[[%", "%]]")) -> str:
    return f"""job "t" {{
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
      template {{
        destination     = "local/x"
        left_delimiter  = "{delimiters[0]}"
        right_delimiter = "{delimiters[1]}"
        # BEGIN EMBED {source_name}
        # END EMBED
      }}
    }}
  }}
}}
"""


def test_render_refuses_what_would_not_survive(tmp_path: Path) -> None:
    job = tmp_path / "t.nomad.hcl"
    (tmp_path / "x.py").write_text("ok\nX_PY\n")
    with pytest.raises(build.EmbedError, match="end the heredoc"):
        build.render(job_with("x.py"), job)
    (tmp_path / "x.py").write_text("a = '[[%'\n")
    with pytest.raises(build.EmbedError, match="delimiter"):
        build.render(job_with("x.py"), job)
    with pytest.raises(build.EmbedError, match="left_delimiter"):
        build.render(job_with("x.py", ("{{", "}}")), job)
    with pytest.raises(build.EmbedError, match="cannot read"):
        build.render(job_with("missing.py"), job)
    with pytest.raises(build.EmbedError, match="no `# BEGIN EMBED"):
        build.render('job "t" {}\n', job)


# --- the job files, parsed by the real nomad binary ----------------------------------------


def nomad_binary() -> str:
    from toolchain.api import installed
    from toolchain.errors import ToolchainError

    try:
        return str(installed("nomad").path)
    except ToolchainError:
        pytest.skip("the toolchain's nomad is not installed (python3 -m toolchain ensure nomad)")


def nomad(*args: str) -> subprocess.CompletedProcess[str]:
    # No agent: validate falls back to local checks on a refused connection (loopback only).
    env = {**os.environ, "NOMAD_ADDR": f"http://127.0.0.1:{free_port()}"}
    return subprocess.run([nomad_binary(), *args], env=env, text=True, capture_output=True,
                          timeout=60)


def parsed(path: Path) -> dict[str, Any]:
    proc = nomad("job", "run", "-output", str(path))
    assert proc.returncode == 0, proc.stderr
    job: dict[str, Any] = json.loads(proc.stdout)["Job"]
    return job


@pytest.mark.parametrize("path", [FIB_HCL, FIB_RAW_HCL,
                                  ROOT / "tests/e2e/fixtures/echo.nomad.hcl"],
                         ids=lambda p: p.name)
def test_job_file_is_formatted_and_valid(path: Path) -> None:
    fmt = nomad("fmt", "-check", str(path))
    assert fmt.returncode == 0, f"run: nomad fmt {path}\n{fmt.stdout}{fmt.stderr}"
    valid = nomad("job", "validate", str(path))
    assert valid.returncode == 0 and "Job validation successful" in valid.stdout, valid.stderr


@pytest.mark.parametrize("path", [FIB_HCL, FIB_RAW_HCL], ids=lambda p: p.name)
def test_fib_jobs_as_nomad_reads_them(path: Path) -> None:
    job = parsed(path)
    assert (job["ID"], job["Datacenters"]) == ("fib", ["*"])
    assert job["Update"]["AutoRevert"] is True
    group = job["TaskGroups"][0]
    assert group["Count"] == 3
    assert group["Networks"][0]["DynamicPorts"][0]["Label"] == "http"
    service = group["Services"][0]
    assert (service["Name"], service["Provider"], service["PortLabel"], service["Tags"]) == \
        ("fib", "consul", "http", ["lb"])
    check = service["Checks"][0]
    assert (check["Type"], check["Path"], check["Interval"], check["Timeout"]) == \
        ("http", "/health", 1_000_000_000, 1_000_000_000)
    task = group["Tasks"][0]
    assert (task["Resources"]["CPU"], task["Resources"]["MemoryMB"]) == (50, 64)
    if path == FIB_RAW_HCL:
        assert task["Driver"] == "raw_exec"
        assert task["Config"] == {"command": "/usr/bin/python3", "args": ["local/fib.py"]}
        assert task["Templates"][0]["EmbeddedTmpl"] == FIB_PY.read_text()
    else:  # the image's tag is the program's to set; by hand, the registry's latest
        assert task["Driver"] == "docker"
        assert task["Config"] == {"image": "frontend.lb.demo:5000/fib:latest", "ports": ["http"],
                                  "hostname": "${attr.unique.hostname}"}
        assert group["Networks"][0]["DynamicPorts"][0]["To"] == 8080


def test_heredoc_escaping_as_nomad_reads_it(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text(TRICKY)
    job = tmp_path / "t.nomad.hcl"
    job.write_text(build.render(job_with("x.py"), job))
    template = parsed(job)["TaskGroups"][0]["Tasks"][0]["Templates"][0]
    assert template["EmbeddedTmpl"] == TRICKY
    assert (template["LeftDelim"], template["RightDelim"]) == ("[[%", "%]]")


# --- cluster/jobs.py -----------------------------------------------------------------------


def alloc(version: int = 0, client: str = "running", task: str = "running",
          healthy: bool | None = True, desired: str = "run",
          alloc_id: str = "a1") -> dict[str, Any]:
    return {"ID": alloc_id, "Name": "fib.fib[0]", "JobVersion": version, "ClientStatus": client,
            "DesiredStatus": desired, "NodeName": "client1",
            "TaskStates": {"fib": {"State": task, "Restarts": 1, "Events": [
                {"Type": "Started", "DisplayMessage": "Task started by client"},
                {"Type": "Terminated", "DisplayMessage": "Exit Code: 3"}]}},
            "DeploymentStatus": None if healthy is None else {"Healthy": healthy}}


JOB = {"ID": "fib", "Type": "service", "Version": 2, "TaskGroups": [{"Count": 2}]}


def deployment(status: str, version: int = 2) -> dict[str, Any]:
    return {"ID": "d1234567", "JobVersion": version, "Status": status,
            "StatusDescription": status.capitalize()}


def test_assess_follows_the_deployment_of_the_version() -> None:
    two = [alloc(2, alloc_id="a"), alloc(2, alloc_id="b")]
    assert jobs.assess(JOB, 2, True, deployment("successful"), two).done
    assert jobs.assess(JOB, 2, True, deployment("successful"), two).healthy == 2
    assert not jobs.assess(JOB, 2, True, deployment("running"), two).done
    # An older version's deployment says nothing about this one: the allocations do, once the
    # registration's evaluation is over (and has made no deployment).
    fresh = [alloc(2, healthy=None, alloc_id="a"), alloc(2, healthy=None, alloc_id="b")]
    assert not jobs.assess(JOB, 2, False, deployment("successful", 1), fresh).done
    assert jobs.assess(JOB, 2, True, deployment("successful", 1), fresh).done
    failed = jobs.assess(JOB, 2, True, deployment("failed"), two)
    assert not failed.done and failed.failed is not None and "failed" in failed.failed
    # Successful, but one allocation has crashed since: not yet.
    assert not jobs.assess(JOB, 2, True, deployment("successful"),
                           [alloc(2), alloc(2, client="pending", alloc_id="b")]).done


def test_assess_without_deployment_counts_running_allocations() -> None:
    two = [alloc(2, healthy=None, alloc_id="a"), alloc(2, healthy=None, alloc_id="b")]
    assert jobs.assess(JOB, 2, True, None, two).done
    assert not jobs.assess(JOB, 2, False, None, two).done, "the evaluation is not over"
    assert not jobs.assess(JOB, 2, True, None, two[:1]).done
    assert not jobs.assess(JOB, 2, True, None, [two[0], alloc(2, task="pending")]).done
    assert not jobs.assess(JOB, 2, True, None, [*two, alloc(2, healthy=False)]).done
    # Stopped and older allocations do not count.
    assert jobs.assess(JOB, 2, True, None, [*two, alloc(1, client="failed"),
                                            alloc(2, desired="stop", client="complete")]).done


def test_assess_fails_when_the_version_moved() -> None:
    progress = jobs.assess({**JOB, "Version": 3}, 2, True, None, [])
    assert progress.failed is not None and "version 3" in progress.failed


def test_assess_batch_jobs() -> None:
    batch = {**JOB, "Type": "batch"}
    assert jobs.assess(batch, 2, True, None, [alloc(2, client="complete"), alloc(2)]).done
    assert jobs.assess(batch, 2, True, None, [alloc(2, client="failed")]).failed


def test_spec_hash_ignores_key_order() -> None:
    assert jobs.spec_hash({"a": 1, "b": [1, {"c": 2}]}) == \
        jobs.spec_hash({"b": [1, {"c": 2}], "a": 1})
    assert jobs.spec_hash({"a": 1}) != jobs.spec_hash({"a": 2})


class FakeApi(jobs.NomadApi):
    """Stands in for NomadApi: a parse result per HCL text, one job, its allocations."""

    def __init__(self, parse: dict[str, dict[str, Any]] | None = None,
                 unreachable: bool = False) -> None:
        self.address = "http://nomad.test:4646"
        self.parses = parse or {}
        self.unreachable = unreachable
        self.live: dict[str, Any] | None = None
        self.allocs: list[dict[str, Any]] = []
        self.latest: dict[str, Any] | None = deployment("running", 0)
        self.calls: list[str] = []
        self.connected: list[tuple[str | None, str | None]] = []  # (CA, token) of each connect
        self.variables: list[dict[str, str]] = []  # the job variables of each parse

    def parse(self, hcl: str, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        self.variables.append(dict(variables or {}))
        if self.unreachable:
            raise jobs.NomadUnreachableError("cannot reach Nomad")
        return self.parses[hcl]

    def job(self, job_id: str) -> dict[str, Any] | None:
        self.calls.append(f"job {job_id}")
        return self.live

    def deployment(self, job_id: str) -> dict[str, Any] | None:
        return self.latest

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        return self.allocs

    def allocation(self, alloc_id: str) -> dict[str, Any] | None:
        return next((a for a in self.allocs if a["ID"] == alloc_id), None)

    def evaluation(self, eval_id: str) -> dict[str, Any] | None:
        return {"Status": "complete"}

    def evaluations(self, job_id: str) -> list[dict[str, Any]]:
        return [{"ModifyIndex": 1, "FailedTGAllocs": {"fib": {
            "NodesEvaluated": 3, "ConstraintFiltered": {"missing drivers": 3}}}}]

    def task_stderr(self, alloc_id: str, task: str, tail_bytes: int = 0) -> str:
        return "Traceback (most recent call last):\nOSError: [Errno 98] Address in use\n"

    def deregister(self, job_id: str, purge: bool) -> None:
        self.calls.append(f"deregister {job_id} purge={purge}")
        self.live = None
        for a in self.allocs:
            a["ClientStatus"] = "complete"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    api = FakeApi({"v1": {"ID": "fib", "Count": 3}, "v1 reformatted": {"ID": "fib", "Count": 3},
                   "v2": {"ID": "fib", "Count": 2}, "renamed": {"ID": "fib2", "Count": 3}})
    def connect(address: str, ca_pem: str | None = None, token: str | None = None) -> FakeApi:
        api.connected.append((ca_pem, token))
        return api

    monkeypatch.setattr(jobs, "connect", connect)
    return api


def state(hcl: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"name": "fib", "hcl": hcl, "address": "http://nomad.test:4646", "wait_healthy": True,
            "timeout": 300.0, "purge_on_delete": True, "job_id": "fib", "job_version": 0,
            "spec_hash": jobs.spec_hash({"ID": "fib", "Count": 3}), **extra}


def inputs(hcl: str, **settings: Any) -> dict[str, Any]:
    return {key: value for key, value in state(hcl, **settings).items()
            if key not in ("job_id", "job_version", "spec_hash")}


def unknown() -> Any:
    """A value still unknown in a preview, as the dynamic provider's Diff hands it over."""
    wire = struct_pb2.Struct()
    wire.update({"value": rpc.UNKNOWN})
    return rpc.deserialize_properties(wire, True)["value"]


def test_diff_compares_the_parsed_spec(fake: FakeApi) -> None:
    provider = jobs.NomadJobProvider()
    assert provider.diff("fib", state(), inputs("v1 reformatted")).changes is False
    changed = provider.diff("fib", state(), inputs("v2"))
    assert changed.changes is True and not changed.replaces
    renamed = provider.diff("fib", state(), inputs("renamed"))
    assert renamed.changes is True and renamed.replaces == ["hcl"]
    assert provider.diff("fib", state(), inputs("v1", purge_on_delete=False)).changes is True
    assert provider.diff("fib", state(), inputs(unknown())).changes is True


def test_diff_in_a_preview_where_the_token_is_still_unknown_uses_the_states(fake: FakeApi) -> None:
    """A preview where the ACL step will update: the new token is not known yet. Pulumi's
    placeholder for it must never reach Nomad as a token."""
    provider = jobs.NomadJobProvider()
    old = state(token="old-token", ca_pem="old-ca")
    assert provider.diff("fib", old, inputs("v1", token=unknown(), ca_pem=unknown())).changes is False
    assert provider.diff("fib", old, inputs("v2", token=unknown(), ca_pem="new-ca")).changes is True
    assert fake.connected == [("old-ca", "old-token"), ("new-ca", "old-token")]


def test_diff_without_nomad_compares_the_text(fake: FakeApi) -> None:
    fake.unreachable = True
    provider = jobs.NomadJobProvider()
    assert provider.diff("fib", state(), inputs("v1")).changes is False
    assert provider.diff("fib", state(), inputs("v1 reformatted")).changes is True
    # a new image for the job (its `image` variable) is a change too
    assert provider.diff("fib", state(variables={"image": "r/fib:1"}),
                         inputs("v1", variables={"image": "r/fib:2"})).changes is True


def test_the_jobs_variables_reach_nomads_parser(fake: FakeApi) -> None:
    jobs.NomadJobProvider().diff("fib", state(), inputs("v1", variables={"image": "r/fib:2"}))
    assert fake.variables == [{"image": "r/fib:2"}]


def test_variables_file_is_hcl_and_refuses_template_sequences() -> None:
    assert jobs.variables_file({"tag": "1", "image": 'r/fib:2"x'}) == 'image = "r/fib:2\\"x"\ntag = "1"\n'
    with pytest.raises(jobs.NomadJobError, match="template sequence"):
        jobs.variables_file({"image": "r/${x}"})
    with pytest.raises(jobs.NomadJobError, match="not an HCL identifier"):
        jobs.variables_file({"no good": "x"})


def test_check_names_bad_inputs() -> None:
    result = jobs.NomadJobProvider().check({}, {"address": "10.0.0.1:4646", "hcl": " ",
                                                "timeout": 0})
    assert sorted(f.property for f in result.failures) == ["address", "hcl", "timeout"]
    assert not jobs.NomadJobProvider().check({}, inputs("v1")).failures


def test_read_marks_gone_and_changed_jobs(fake: FakeApi) -> None:
    provider = jobs.NomadJobProvider()
    assert provider.read("fib", state()).id == ""
    fake.live = {"ID": "fib", "Version": 0, "JobModifyIndex": 9, "Stop": True}
    assert provider.read("fib", state()).id == "", "a stopped job reads as gone"
    fake.live = {"ID": "fib", "Version": 0, "JobModifyIndex": 9}
    fake.allocs = [alloc(0, alloc_id="a"), alloc(0, alloc_id="b"), alloc(0, client="failed")]
    same = provider.read("fib", state())
    assert same.id == "fib" and same.outs is not None
    assert same.outs["healthy_allocations"] == 2 and same.outs["spec_hash"] == state()["spec_hash"]
    fake.live["Version"] = 4
    changed = provider.read("fib", state()).outs or {}
    assert changed["job_version"] == 4 and "changed outside Pulumi" in changed["spec_hash"]


def test_delete_deregisters_and_waits(fake: FakeApi) -> None:
    provider = jobs.NomadJobProvider()
    provider.delete("fib", state())
    assert fake.calls == ["job fib"], "nothing to do for a job that is gone"
    fake.live = {"ID": "fib", "Version": 0}
    fake.allocs = [alloc(0)]
    provider.delete("fib", state(purge_on_delete=False))
    assert fake.calls[-1] == "deregister fib purge=False"
    assert fake.allocs[0]["ClientStatus"] == "complete"


def test_wait_healthy_times_out_with_the_last_state(fake: FakeApi) -> None:
    fake.live = {**JOB, "Version": 0}
    fake.allocs = [alloc(0, client="pending", task="pending", healthy=None)]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(jobs.NomadJobError) as failure:
        jobs.wait_healthy(fake, "fib", 0, {"EvalID": "e1", "EvalCreateIndex": 5},
                          timeout=5, clock=lambda: now[0], sleep=sleep)
    message = str(failure.value)
    assert "job fib version 0 at http://nomad.test:4646: not healthy after 5s" in message
    assert "0/2 allocations of version 0 healthy" in message
    assert "allocation a1 fib.fib[0] version 0 on client1: pending" in message
    assert "Terminated: Exit Code: 3" in message
    assert "stderr of task fib in a1:\n    | Traceback" in message
    assert "    | OSError: [Errno 98] Address in use" in message
    assert "group fib: not placed" in message and "missing drivers: 3" in message
    assert "nomad job status fib" in message


def test_wait_healthy_judges_by_the_deployment_of_the_registration(fake: FakeApi) -> None:
    fake.live = {**JOB, "Version": 0}
    fake.allocs = [alloc(0, alloc_id="a"), alloc(0, alloc_id="b")]
    registration = {"EvalID": "e1", "EvalCreateIndex": 5}
    fake.latest = {**deployment("failed", 0), "CreateIndex": 7}
    with pytest.raises(jobs.NomadJobError, match="deployment d1234567 failed"):
        jobs.wait_healthy(fake, "fib", 0, registration, timeout=5)
    # The same spec registered again makes no deployment: an old failure is history.
    fake.latest = {**deployment("failed", 0), "CreateIndex": 3}
    assert jobs.wait_healthy(fake, "fib", 0, registration, timeout=5) == 2
    fake.latest = {**deployment("successful", 0), "CreateIndex": 3}
    assert jobs.wait_healthy(fake, "fib", 0, registration, timeout=5) == 2


def test_provider_pickles_by_reference() -> None:
    """The dynamic provider host imports cluster.jobs: the pickle is a name, not the code."""
    import base64

    dill: Any = importlib.import_module("dill")  # no type hints
    blob = serialize_provider(jobs.NomadJobProvider())
    assert len(base64.b64decode(blob)) < 200
    assert isinstance(dill.loads(base64.b64decode(blob)), jobs.NomadJobProvider)
