"""The `ssh` machine provider end to end: a cluster installed on EXISTING machines over SSH.

Five lab machines made outside any Pulumi stack stand for a user's machines (sshhosts.py): a
non-root user `deploy` with passwordless sudo and an SSH key, the clients reachable only
through the load balancer as bastion. In order:

- the machines are as described (a quick check of the fixture itself);
- pre-flight: one `pulumi preview` of a stack with four unfit hosts fails and names each host
  with its problem and fix, and changes nothing on any machine;
- `pulumi up` of the good stack builds the cluster (fib answers through the load balancer,
  security is on, the next preview is empty);
- `pulumi destroy` leaves every machine as it was before the cluster, `deploy` still logs in
  with sudo, and the cluster can be built again and destroyed again.

The durations of `up` and `destroy` are printed (the stack's own record of each update), for
the report; they are never asserted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from .conftest import TIMINGS, Project, project_copy
from .sshhosts import (
    ADDRESSES,
    ARCH_NODE,
    ARCH_PORT,
    BUSY_NODE,
    BUSY_PORT,
    CLIENTS,
    LB,
    NODES,
    NOSUDO,
    NOSUDO_NODE,
    ROOT_SERVER,
    TRUST_ON_FIRST_USE,
    USER,
    SshHosts,
    changes_since,
    lab,
    make_hosts,
    refused,
    remove_hosts,
    render_stack_config,
    scanned_host_key,
    ssh,
    start_unfit_services,
    stop_unfit_services,
)

pytestmark = pytest.mark.e2e

STACK = "sshe2e"
UNFIT_STACK = "sshe2e-unfit"
# The unfit stack's four problems: (node, what its line must say besides the node and "fix").
PROBLEMS = [("client1", "host key"), ("client2", "sudo"), ("client3", "architecture"),
            ("frontend-lb", str(BUSY_PORT))]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHosts]:
    """The five existing machines (sshhosts.make_hosts), removed after the module, whatever
    happened."""
    try:
        yield make_hosts(tmp_path_factory.mktemp("sshhosts"))
    finally:
        remove_hosts()


@pytest.fixture
def unfit_services(hosts: SshHosts) -> Iterator[None]:
    """For one test: client3's second sshd (port 2222, `setarch i686`) and a web server on the
    load balancer's port 5000."""
    try:
        start_unfit_services()
        yield
    finally:
        stop_unfit_services()


@dataclass
class Stacks:
    good: Project
    unfit: Project


def unfit_config(hosts: SshHosts) -> str:
    """The stack on four unfit hosts: client1 pinned to ANOTHER machine's host key, client2 as
    a user without sudo, client3 through the sshd whose sessions are i686 (and the load
    balancer's port 5000 taken, by unfit_services)."""
    return render_stack_config(hosts, {
        "client1": {"hostKey": hosts["client2"].host_key},
        NOSUDO_NODE: {"user": NOSUDO},
        ARCH_NODE: {"port": ARCH_PORT},
    })


@pytest.fixture(scope="module")
def stacks(hosts: SshHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """A copy of the project with its own backend and the two stacks on the machines; the good
    one destroyed at the end if a test left it up."""
    path, env = project_copy(tmp_path_factory.mktemp("sshproject"), STACK, render_stack_config(hosts),
                             "sshe2e-passphrase")
    env.pop("SSH_AUTH_SOCK", None)  # the stacks name their key file; no agent may stand in
    (path / f"Pulumi.{UNFIT_STACK}.yaml").write_text(unfit_config(hosts))
    timings = TIMINGS.with_name("hashicluster-ssh-timings.json")
    good = Project(path, env, stack=STACK, timings_file=timings)
    unfit = Project(path, env, stack=UNFIT_STACK, timings_file=timings)
    for proj in (good, unfit):
        proj.pulumi("stack", "init")
    yield Stacks(good, unfit)
    if not good.destroyed:
        good.pulumi("destroy", "--yes", check=False)


def last_update_seconds(proj: Project) -> float:
    """How long the stack's last update took, by its own history."""
    history = json.loads(proj.pulumi("stack", "history", "--json").stdout)
    last = max(history, key=lambda u: u.get("version", 0))
    start, end = (datetime.fromisoformat(last[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    return (end - start).total_seconds()


def timed(proj: Project, label: str, *args: str) -> None:
    """ARGS (`up ...`, `destroy ...`), then print how long the stack says it took."""
    proj.timed(label, *args)
    print(f"ssh machines: {label}: {last_update_seconds(proj):.1f} s (the stack's history; "
          f"{proj.timings[label]:.1f} s wall clock)")


def resource_count(proj: Project) -> int:
    """How many resources the stack's state holds (its Stack resource included)."""
    state = json.loads(proj.pulumi("stack", "export").stdout)
    return len(state["deployment"].get("resources") or [])


def fib_answer(proj: Project) -> dict[str, object]:
    """GET /fib/10 through the load balancer, from the lab network."""
    out = proj.exec("curl", "-sf", "-m", "5", f"http://{ADDRESSES[LB]}/fib/10").stdout
    return json.loads(out)  # type: ignore[no-any-return]


def assert_fib_answers(proj: Project) -> None:
    answer = fib_answer(proj)
    assert (answer["n"], answer["fib"]) == (10, 55), answer


def assert_users_still_work(hosts: SshHosts) -> None:
    """deploy logs in everywhere (the clients through the load balancer) and sudo -n works."""
    for node in NODES:
        proc = ssh(hosts, USER, node, "id -un; sudo -n id -u")
        assert (proc.returncode, proc.stdout.split()) == (0, [USER, "0"]), (node, proc.stderr)


def test_fixture_hosts_are_as_described(hosts: SshHosts, unfit_services: None) -> None:
    """The machines are what the stacks say and what the other tests count on."""
    # deploy logs in with the run's key (every host key pinned) and has passwordless sudo:
    # straight to the server and the load balancer, to the clients only through the load balancer.
    assert_users_still_work(hosts)
    for node in CLIENTS:
        direct = ssh(hosts, USER, node, "true", jump=False)
        assert refused(direct), (node, direct.returncode, direct.stderr)
    for node in (ROOT_SERVER, LB):
        assert ssh(hosts, USER, node, "true", jump=False).returncode == 0, node
    # nosudo logs in on client2 (through the load balancer) and has no sudo.
    nosudo = ssh(hosts, NOSUDO, NOSUDO_NODE, "id -un; sudo -n true")
    assert nosudo.stdout.split() == [NOSUDO] and nosudo.returncode != 0, (nosudo.stdout, nosudo.stderr)
    assert "a password is required" in nosudo.stderr, nosudo.stderr
    rules = ssh(hosts, USER, NOSUDO_NODE, f"sudo -n -l -U {NOSUDO}").stdout
    assert rules.startswith(f"User {NOSUDO} is not allowed to run sudo"), rules
    # client3's second sshd: same host key, sessions report i686; the first one's stay x86_64.
    arch = ssh(hosts, USER, ARCH_NODE, "uname -m", port=ARCH_PORT)
    assert (arch.returncode, arch.stdout.strip()) == (0, "i686"), arch.stderr
    assert ssh(hosts, USER, ARCH_NODE, "uname -m").stdout.strip() == "x86_64"
    # The load balancer's port 5000 is taken.
    busy = lab("exec", "--", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
               f"http://{hosts[BUSY_NODE].address}:{BUSY_PORT}/")
    assert busy.stdout == "200"
    # The keys the stacks pin are the ones the machines present.
    config = yaml.safe_load(render_stack_config(hosts))["config"]["hashicluster:machines"]
    entries = dict(zip(NODES, config["servers"] + config["loadBalancers"] + config["clients"], strict=True))
    assert entries[ROOT_SERVER]["hostKey"] == TRUST_ON_FIRST_USE
    for node in NODES:
        assert scanned_host_key(hosts[node].address) == hosts[node].host_key, node
        if node != ROOT_SERVER:
            assert entries[node]["hostKey"] == hosts[node].host_key, node
        assert entries[node]["viaBastion"] is (node in CLIENTS), node
    assert config["bastion"]["hostKey"] == hosts[LB].host_key
    assert scanned_host_key(hosts[ARCH_NODE].address, ARCH_PORT) == hosts[ARCH_NODE].host_key
    unfit = yaml.safe_load(unfit_config(hosts))["config"]["hashicluster:machines"]["clients"]
    assert unfit[0]["hostKey"] != hosts["client1"].host_key
    # Logins, sudo and the two extra services left no trace in the snapshots.
    diff = changes_since(hosts)
    assert diff == "", f"the machines changed with nothing done to them:\n{diff}"


def test_preflight_names_every_unfit_host_and_changes_nothing(hosts: SshHosts, stacks: Stacks,
                                                               unfit_services: None) -> None:
    proc = stacks.unfit.pulumi("preview", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    lines = out.lower().splitlines()
    for node, what in PROBLEMS:
        assert any(node in line and what in line and "fix" in line for line in lines), \
            f"no line names {node}, {what!r} and the fix:\n{out}"
    diff = changes_since(hosts)
    assert diff == "", f"a failed pre-flight changed the machines:\n{diff}"


def test_up_builds_the_cluster_through_the_bastion(hosts: SshHosts, stacks: Stacks, tmp_path: Path) -> None:
    good = stacks.good
    timed(good, "up", "up", "--yes", "--skip-preview")
    assert_fib_answers(good)
    # Security is on: with the cluster's CA but no token, Consul refuses to list the tokens.
    ca = tmp_path / "ca.pem"
    ca.write_text(good.outputs()["caCertificate"])
    root = hosts[ROOT_SERVER].address
    refusal = good.exec("curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca),
                        f"https://{root}:8501/v1/acl/tokens", check=False)
    assert (refusal.returncode, refusal.stdout) == (0, "403"), refusal.stderr
    good.pulumi("preview", "--diff", "--expect-no-changes")
    # The snapshots see the cluster (so that their equality after destroy means something).
    assert changes_since(hosts) != "", "the machines' snapshots do not show the cluster"


def test_destroy_leaves_the_machines_as_they_were(hosts: SshHosts, stacks: Stacks) -> None:
    good = stacks.good
    assert resource_count(good) > 1, "no cluster to destroy: the stack has no resources (did the up fail?)"
    timed(good, "destroy", "destroy", "--yes")
    good.destroyed = True
    diff = changes_since(hosts)
    assert diff == "", f"after destroy the machines differ from before the cluster:\n{diff}"
    assert_users_still_work(hosts)
    # The same machines take the cluster again, and give it back again.
    good.destroyed = False
    timed(good, "up again", "up", "--yes", "--skip-preview")
    assert_fib_answers(good)
    timed(good, "destroy again", "destroy", "--yes")
    good.destroyed = True
    diff = changes_since(hosts)
    assert diff == "", f"after the second destroy the machines differ from before the cluster:\n{diff}"
