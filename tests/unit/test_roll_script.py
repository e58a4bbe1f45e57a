"""install.roll_script and the staging install: run by bash against a stand-in `systemctl`
(which records its calls) and marker files in a temporary directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cluster import install


@pytest.fixture()
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary PENDING directory and a PATH whose systemctl appends its arguments to
    tmp_path/calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    systemctl.chmod(0o755)
    monkeypatch.setattr(install, "PENDING", str(tmp_path / "pending"))
    (tmp_path / "pending").mkdir()
    return tmp_path


def run(machine: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{machine / 'bin'}:{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                           timeout=30, check=False, cwd=machine)


def calls(machine: Path) -> list[str]:
    path = machine / "calls"
    return path.read_text().splitlines() if path.exists() else []


def restarts(leads: str = "") -> list[install.Restart]:
    # Healthy once the (stand-in) service has been restarted: systemctl recorded it.
    return [install.Restart(p, f"grep -q 'restart {p}' calls", f"echo state of {p}", leads=leads, timeout=5)
            for p in ("consul", "nomad")]


def test_nothing_pending_restarts_nothing(machine: Path) -> None:
    proc = run(machine, install.roll_script("client1", restarts()))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == []
    assert proc.stdout.strip() == "client1: no restart"


def test_pending_agents_restart_in_order_and_are_cleared(machine: Path) -> None:
    (machine / "pending" / "nomad").touch()
    (machine / "pending" / "consul").touch()
    proc = run(machine, install.roll_script("client1", restarts()))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == ["restart consul", "restart nomad"]
    assert list((machine / "pending").iterdir()) == []
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("client1: restarting consul") and lines[-1].endswith("client1: nomad healthy")
    # Every line of the log carries a UTC timestamp: the order can be checked afterwards.
    assert lines[0][:4].isdigit() and lines[0].split(" ", 1)[0].endswith("Z")


def test_the_leader_waits_for_the_leader_pass(machine: Path) -> None:
    (machine / "pending" / "consul").touch()
    first = run(machine, install.roll_script("server2", restarts(leads="true"), defer_leader=True))
    assert first.returncode == 0, first.stderr
    assert calls(machine) == []
    assert "leads the consul servers; restarted in the leader pass" in first.stdout
    assert (machine / "pending" / "consul").exists()
    second = run(machine, install.roll_script("server2", restarts(leads="true")))
    assert second.returncode == 0, second.stderr
    assert calls(machine) == ["restart consul"]
    assert not (machine / "pending" / "consul").exists()


def test_a_follower_restarts_in_the_first_pass(machine: Path) -> None:
    (machine / "pending" / "nomad").touch()
    proc = run(machine, install.roll_script("server3", restarts(leads="false"), defer_leader=True))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == ["restart nomad"]


def test_an_agent_that_never_gets_healthy_stops_the_roll(machine: Path) -> None:
    (machine / "pending" / "consul").touch()
    (machine / "pending" / "nomad").touch()
    never = [install.Restart("consul", "false", "echo 'consul: no leader'", timeout=1),
             *restarts()[1:]]
    proc = run(machine, install.roll_script("client2", never))
    assert proc.returncode == 1
    assert "consul on client2 after its restart not ready after 1s" in proc.stderr
    assert "consul: no leader" in proc.stderr
    # Nothing after it restarts, and the marker stays for the next run.
    assert calls(machine) == ["restart consul"]
    assert (machine / "pending" / "consul").exists() and (machine / "pending" / "nomad").exists()


def test_the_prelude_runs_before_any_restart(machine: Path) -> None:
    (machine / "pending" / "consul").touch()
    healthy = [install.Restart("consul", '[ "$before" = 7 ]', "true", timeout=1)]
    proc = run(machine, install.roll_script("client1", healthy, prelude=["before=7"]))
    assert proc.returncode == 0, proc.stderr


AUTOPILOT_OK = ('{"Healthy":true,"FailureTolerance":1,"Servers":['
                '{"Name":"root","SerfStatus":"alive","Leader":true,"Healthy":true},'
                '{"Name":"server2","SerfStatus":"alive","Leader":false,"Healthy":true},'
                '{"Name":"server3","SerfStatus":"alive","Leader":false,"Healthy":true}]}')
# Nomad orders the fields differently.
NOMAD_ONE_DOWN = ('{"FailureTolerance":0,"Healthy":false,"Servers":['
                  '{"Name":"root.global","SerfStatus":"alive","Healthy":true},'
                  '{"Name":"server2.global","SerfStatus":"failed","Healthy":false},'
                  '{"Name":"server3.global","SerfStatus":"alive","Healthy":true}]}')
CHECK = '"{id}":{{"Node":"client1","CheckID":"_nomad-check-{id}","Status":"{status}","ServiceName":"fib"}}'


def checks(*statuses: str) -> str:
    return "{" + ",".join(CHECK.format(id=f"c{i}", status=s) for i, s in enumerate(statuses)) + "}"


@pytest.fixture()
def api(machine: Path) -> Path:
    """A stand-in curl that answers the autopilot and agent-checks URLs from files."""
    curl = machine / "bin" / "curl"
    curl.write_text(f'#!/bin/sh\nfor a; do url=$a; done\ncase $url in\n'
                    f'  */v1/operator/autopilot/health) cat {machine}/autopilot.json;;\n'
                    f'  */v1/agent/checks) cat {machine}/checks.json;;\n  *) exit 22;;\nesac\n')
    curl.chmod(0o755)
    return machine


def prelude_check(api: Path, condition: str) -> bool:
    from cluster.services.agents import ROLL_PRELUDE
    # What /etc/consul.d/api.env defines on a machine (plain HTTP here).
    env = ['api() { curl -sf "$@"; }', "CONSUL_HTTP_ADDR=http://127.0.0.1:8500"]
    test = f"if {condition}; then echo yes; else echo no; fi"
    proc = run(api, "\n".join(["set -eu", *env, *ROLL_PRELUDE, test]))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1] == "yes"


@pytest.mark.parametrize(("body", "count", "healthy"), [
    (AUTOPILOT_OK, 3, True),
    (AUTOPILOT_OK, 4, False),  # a server is missing from the report
    (NOMAD_ONE_DOWN, 3, False),
    (NOMAD_ONE_DOWN.replace('"Healthy":false', '"Healthy":true').replace("failed", "alive"), 3, True),
])
def test_servers_healthy_reads_the_autopilot_report(api: Path, body: str, count: int, healthy: bool) -> None:
    (api / "autopilot.json").write_text(body)
    (api / "checks.json").write_text("{}")
    assert prelude_check(api, f"servers_healthy http://127.0.0.1:8500 {count}") is healthy


def test_servers_healthy_is_false_without_an_answer(api: Path) -> None:
    (api / "checks.json").write_text("{}")
    assert prelude_check(api, "servers_healthy http://127.0.0.1:8500 1") is False


@pytest.mark.parametrize(("before", "after", "passing"), [
    (checks("passing", "passing"), checks("passing", "passing"), True),
    (checks("passing", "passing"), checks("passing", "critical"), False),
    (checks("passing", "passing"), checks("warning", "passing"), False),
    (checks("passing", "passing"), checks("passing"), False),  # a check is not back yet
    ("{}", "{}", True),  # the load balancer: no checks at all
    # A check of the machine's own (not Nomad's) that the change removes: not waited for.
    ("{" + CHECK.format(id="c0", status="passing")
     + ',"own":{"CheckID":"backend-health","Status":"passing"}}', checks("passing"), True),
])
def test_checks_passing_wants_every_check_back_and_passing(api: Path, before: str, after: str,
                                                           passing: bool) -> None:
    # The prelude counts the checks first; then the restarted agent answers AFTER.
    (api / "checks.json").write_text(before)
    script = f"cp {api}/after.json {api}/checks.json && checks_passing $checks"
    (api / "after.json").write_text(after)
    assert prelude_check(api, script) is passing


# ------------------------------------------------------------------ secret files on stdin

def _reader(agent: install.Agent) -> str:
    return "\n".join(["set -eu", 'fail() { echo "error: $*" >&2; exit 1; }', "changed=0",
                      *install._read_secrets(agent), 'echo "changed=$changed"'])


def _agent(secrets: tuple[str, ...], retired: tuple[str, ...] = ()) -> install.Agent:
    return install.Agent("consul", None, [], "root", None, "true", "true", secrets=secrets, retired=retired)


def test_secret_files_come_from_stdin(tmp_path: Path) -> None:
    import getpass

    from cluster.render import File
    me = getpass.getuser()
    gossip, old = tmp_path / "consul.d" / "gossip.hcl", tmp_path / "consul.d" / "old.hcl"
    old.parent.mkdir()
    old.write_text("stale")
    files = [File(str(gossip), 'encrypt = "s3cr3t with spaces"\n', "0640", me)]
    script = _reader(_agent((str(gossip),), (str(old),)))
    assert "s3cr3t" not in script
    proc = subprocess.run(["bash", "-c", script], input=install.secrets_bundle(files), text=True,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert gossip.read_text() == 'encrypt = "s3cr3t with spaces"\n'
    assert oct(gossip.stat().st_mode & 0o777) == "0o640"
    assert not old.exists()
    assert proc.stdout.strip() == "changed=1"
    again = subprocess.run(["bash", "-c", script], input=install.secrets_bundle(files), text=True,
                           capture_output=True, check=False)
    assert again.stdout.strip() == "changed=0"


def test_a_missing_secret_file_stops_the_install(tmp_path: Path) -> None:
    script = _reader(_agent((str(tmp_path / "gossip.hcl"),)))
    proc = subprocess.run(["bash", "-c", script], input="", text=True, capture_output=True, check=False)
    assert proc.returncode == 1
    assert f"consul: the secret file {tmp_path}/gossip.hcl did not arrive on stdin" in proc.stderr
