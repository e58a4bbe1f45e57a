"""The roll step's script and the install step's staging and secret files (templates/steps/),
run by bash against stand-ins: `systemctl` (records its calls), `curl` (answers the Consul and
Nomad APIs from files), `nomad` and `consul`, with marker files in a temporary directory."""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

import pytest

from cluster import install
from cluster.config import DEFAULT_MIRROR, BinaryPin, InstallSpec
from cluster.render import File
from cluster.topology import Node, Role

# What /etc/consul.d/api.env defines on a machine (plain HTTP here); the scripts source it
# when it is there, and it is not on the test host.
API_ENV = 'api() { curl -sf "$@"; }\nCONSUL_HTTP_ADDR=http://127.0.0.1:8500\nNOMAD_SCHEME=http\n'
CLIENT1 = Node("client1", Role.CLIENT, 1, "client1.demo", "10.210.1.31")
CLIENT2 = Node("client2", Role.CLIENT, 2, "client2.demo", "10.210.1.32")
SERVER2 = Node("server2", Role.SERVER, 2, "server2.server.demo", "10.210.1.11")
SERVER3 = Node("server3", Role.SERVER, 3, "server3.server.demo", "10.210.1.12")

AUTOPILOT_OK = ('{"Healthy":true,"FailureTolerance":1,"Servers":['
                '{"Name":"root","SerfStatus":"alive","Leader":true,"Healthy":true},'
                '{"Name":"server2","SerfStatus":"alive","Leader":false,"Healthy":true},'
                '{"Name":"server3","SerfStatus":"alive","Leader":false,"Healthy":true}]}')
# Nomad orders the fields differently.
NOMAD_ONE_DOWN = ('{"FailureTolerance":0,"Healthy":false,"Servers":['
                  '{"Name":"root.global","SerfStatus":"alive","Healthy":true},'
                  '{"Name":"server2.global","SerfStatus":"failed","Healthy":false},'
                  '{"Name":"server3.global","SerfStatus":"alive","Healthy":true}]}')
CHECK = ('"{id}":{{"Node":"client1","CheckID":"_nomad-check-{id}","Status":"{status}","ServiceName":"fib",'
         '"ServiceID":"_nomad-task-{id}-group-fib-fib-http"}}')
# The Nomad agent's own check (registered anew, critical, at every start of Nomad).
AGENT_CHECK = ('"agent":{{"Node":"client1","CheckID":"_nomad-check-agent","Status":"{status}",'
               '"ServiceName":"nomad-client","ServiceID":"_nomad-client-x2puck"}}')


def checks(*statuses: str) -> str:
    return "{" + ",".join(CHECK.format(id=f"c{i}", status=s) for i, s in enumerate(statuses)) + "}"


def stand_in(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture()
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary PENDING and STAGING directory, and on PATH: a systemctl that appends its
    arguments to tmp_path/calls; a curl that answers the leader, autopilot and agent-checks
    URLs from tmp_path/leader, autopilot.json and checks.json; a nomad whose node is ready;
    a consul whose `members` says there is no leader."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir / "systemctl", f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    stand_in(bin_dir / "curl", f'#!/bin/sh\nfor a; do url=$a; done\ncase $url in\n'
                               f'  */v1/status/leader) cat {tmp_path}/leader;;\n'
                               f'  */v1/operator/autopilot/health) cat {tmp_path}/autopilot.json;;\n'
                               f'  */v1/agent/checks) cat {tmp_path}/checks.json;;\n  *) exit 22;;\nesac\n')
    stand_in(bin_dir / "nomad", '#!/bin/sh\necho \'{"ID": "n1", "Status": "ready"}\'\n')
    stand_in(bin_dir / "consul", '#!/bin/sh\necho "consul: no leader"\n')
    monkeypatch.setattr(install, "PENDING", str(tmp_path / "pending"))
    monkeypatch.setattr(install, "STAGING", str(tmp_path / "staging"))
    monkeypatch.setattr(install, "MANIFESTS", str(tmp_path / "manifest"))
    (tmp_path / "pending").mkdir()
    (tmp_path / "leader").write_text('"10.210.1.10:8300"')
    (tmp_path / "autopilot.json").write_text(AUTOPILOT_OK)
    (tmp_path / "checks.json").write_text(checks("passing"))
    return tmp_path


def run(machine: Path, script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{machine / 'bin'}:{os.environ['PATH']}", HC_STATE=str(machine / "state"))
    return subprocess.run(["bash", "-c", API_ENV + script], capture_output=True, text=True, env=env,
                          input=stdin, timeout=30, check=False, cwd=machine)


def calls(machine: Path) -> list[str]:
    path = machine / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_nothing_pending_restarts_nothing(machine: Path) -> None:
    proc = run(machine, install.roll_script(CLIENT1, 1))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == []
    assert proc.stdout.strip() == "client1: no restart"


def test_pending_agents_restart_in_order_and_are_cleared(machine: Path) -> None:
    (machine / "pending" / "nomad").touch()
    (machine / "pending" / "consul").touch()
    proc = run(machine, install.roll_script(CLIENT1, 1))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == ["restart consul", "restart nomad"]
    assert list((machine / "pending").iterdir()) == []
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("client1: restarting consul") and lines[-1].endswith("client1: nomad healthy")
    # Every line of the log carries a UTC timestamp: the order can be checked afterwards.
    assert lines[0][:4].isdigit() and lines[0].split(" ", 1)[0].endswith("Z")


def test_the_leader_waits_for_the_leader_pass(machine: Path) -> None:
    (machine / "pending" / "consul").touch()
    (machine / "leader").write_text('"10.210.1.11:8300"')  # server2 leads
    first = run(machine, install.roll_script(SERVER2, 3, defer_leader=True))
    assert first.returncode == 0, first.stderr
    assert calls(machine) == []
    assert "leads the consul servers; restarted in the leader pass" in first.stdout
    assert (machine / "pending" / "consul").exists()
    second = run(machine, install.roll_script(SERVER2, 3))
    assert second.returncode == 0, second.stderr
    assert calls(machine) == ["restart consul"]
    assert not (machine / "pending" / "consul").exists()


def test_a_follower_restarts_in_the_first_pass(machine: Path) -> None:
    (machine / "pending" / "nomad").touch()
    proc = run(machine, install.roll_script(SERVER3, 3, defer_leader=True))
    assert proc.returncode == 0, proc.stderr
    assert calls(machine) == ["restart nomad"]


def test_an_agent_that_never_gets_healthy_stops_the_roll(machine: Path) -> None:
    (machine / "pending" / "consul").touch()
    (machine / "pending" / "nomad").touch()
    (machine / "leader").unlink()  # Consul never finds its leader again
    proc = run(machine, install.roll_script(CLIENT2, 1, timeout=1))
    assert proc.returncode == 1
    assert "consul on client2 after its restart not ready after 1s" in proc.stderr
    assert "consul: no leader" in proc.stderr  # the state it last saw
    # Nothing after it restarts, and the marker stays for the next run.
    assert calls(machine) == ["restart consul"]
    assert (machine / "pending" / "consul").exists() and (machine / "pending" / "nomad").exists()


def test_the_checks_are_counted_before_any_restart(machine: Path) -> None:
    """A client is healthy again only once as many of Nomad's checks pass as before."""
    (machine / "pending" / "consul").touch()
    (machine / "checks.json").write_text(checks("passing", "passing"))
    # The restart loses a check, for good.
    (machine / "after.json").write_text(checks("passing"))
    stand_in(machine / "bin" / "systemctl",
             f'#!/bin/sh\necho "$*" >> {machine}/calls\ncp {machine}/after.json {machine}/checks.json\n')
    proc = run(machine, install.roll_script(CLIENT1, 1, timeout=1))
    assert proc.returncode == 1
    assert "consul on client1 after its restart not ready after 1s" in proc.stderr


def condition(machine: Path, node: Node, test: str) -> bool:
    """Whether TEST holds with the functions of NODE's roll script (nothing pending)."""
    script = install.roll_script(node, 3) + f"if {test}; then echo yes; else echo no; fi\n"
    proc = run(machine, script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1] == "yes"


@pytest.mark.parametrize(("body", "count", "healthy"), [
    (AUTOPILOT_OK, 3, True),
    (AUTOPILOT_OK, 4, False),  # a server is missing from the report
    (NOMAD_ONE_DOWN, 3, False),
    (NOMAD_ONE_DOWN.replace('"Healthy":false', '"Healthy":true').replace("failed", "alive"), 3, True),
])
def test_servers_healthy_reads_the_autopilot_report(machine: Path, body: str, count: int,
                                                    healthy: bool) -> None:
    (machine / "autopilot.json").write_text(body)
    assert condition(machine, SERVER2, f"servers_healthy http://127.0.0.1:8500 {count}") is healthy


def test_servers_healthy_is_false_without_an_answer(machine: Path) -> None:
    (machine / "autopilot.json").unlink()
    assert condition(machine, SERVER2, "servers_healthy http://127.0.0.1:8500 1") is False


@pytest.mark.parametrize(("before", "after", "passing"), [
    (checks("passing", "passing"), checks("passing", "passing"), True),
    (checks("passing", "passing"), checks("passing", "critical"), False),
    (checks("passing", "passing"), checks("warning", "passing"), False),
    (checks("passing", "passing"), checks("passing"), False),  # a check is not back yet
    ("{}", "{}", True),  # the load balancer: no checks at all
    # The Nomad agent's own check: not waited for, and not counted as an instance's.
    (checks("passing")[:-1] + "," + AGENT_CHECK.format(status="passing") + "}",
     checks("passing")[:-1] + "," + AGENT_CHECK.format(status="critical") + "}", True),
    (checks("passing")[:-1] + "," + AGENT_CHECK.format(status="passing") + "}",
     "{" + AGENT_CHECK.format(status="passing") + "}", False),
    # A check of the machine's own (not Nomad's) that the change removes: not waited for.
    ("{" + CHECK.format(id="c0", status="passing")
     + ',"own":{"CheckID":"backend-health","Status":"passing"}}', checks("passing"), True),
])
def test_checks_passing_wants_every_check_back_and_passing(machine: Path, before: str, after: str,
                                                           passing: bool) -> None:
    # The script counts the checks first; then the restarted agent answers AFTER.
    (machine / "checks.json").write_text(before)
    (machine / "after.json").write_text(after)
    test = f'cp {machine}/after.json {machine}/checks.json && checks_passing "$checks"'
    assert condition(machine, CLIENT1, test) is passing


# ------------------------------------------------------------------ secret files on stdin

def _agent(secrets: tuple[str, ...], retired: tuple[str, ...] = ()) -> install.Agent:
    return install.Agent("consul", None, [], "root", None, secrets=secrets, retired=retired)


def _install(agent: install.Agent) -> str:
    pin = BinaryPin("consul", "1.0.0", "c" * 64)
    return install.install_script(agent, InstallSpec("upload", DEFAULT_MIRROR, pin, pin, pin, pin))


def test_secret_files_come_from_stdin(machine: Path) -> None:
    me = getpass.getuser()
    gossip, old = machine / "consul.d" / "gossip.hcl", machine / "consul.d" / "old.hcl"
    old.parent.mkdir()
    old.write_text("stale")
    files = [File(str(gossip), 'encrypt = "s3cr3t with spaces"\n', "0640", me)]
    script = _install(_agent((str(gossip),), (str(old),)))
    assert "s3cr3t" not in script
    proc = run(machine, script, install.secrets_bundle(files))
    assert proc.returncode == 0, proc.stderr
    assert gossip.read_text() == 'encrypt = "s3cr3t with spaces"\n'
    assert oct(gossip.stat().st_mode & 0o777) == "0o640"
    assert not old.exists()
    # Something changed: the unit files are read again and the agent restarts.
    # The service's state before the step is kept once (for its removal), then it is enabled.
    assert calls(machine) == ["daemon-reload", "is-enabled consul", "is-active consul",
                              "enable --quiet consul", "restart consul"]
    (machine / "calls").unlink()
    again = run(machine, script, install.secrets_bundle(files))
    assert again.returncode == 0, again.stderr
    assert calls(machine) == ["enable --quiet consul", "start consul"]


def test_a_missing_secret_file_stops_the_install(machine: Path) -> None:
    script = _install(_agent((str(machine / "gossip.hcl"),)))
    proc = run(machine, script)
    assert proc.returncode == 1
    assert f"consul: the secret file {machine}/gossip.hcl did not arrive on stdin" in proc.stderr


def test_a_file_that_would_end_its_here_document_is_refused() -> None:
    agent = install.Agent("consul", None, [File("/etc/consul.d/x.hcl", "a\nHASHICLUSTER_EOF\nb\n")],
                          "root", None)
    with pytest.raises(ValueError, match="HASHICLUSTER_EOF"):
        _install(agent)
