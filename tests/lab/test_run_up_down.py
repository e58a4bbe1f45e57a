"""`./run up` and `./run down` as a user types them, on a stack of their own: after the up the
seed's URLs answer from the host's own network namespace (the host's link to the lab switch)
by the names of the stack's block in the hosts file; after the down the block is gone, and the
link too when no other lab machine is left.

It lives with the lab's tests, not the end-to-end ones, because it must see the link go: the
end-to-end tests' shared cluster keeps lab machines up (and with them the link) for the rest
of the session, and the lab's tests run before it. It runs from a copy of this working tree
(the venv hard-linked in, as `./run` refuses a symlinked one) with its own state directory
(Pulumi backend, passphrase), its own hosts file (HASHICLUSTER_HOSTS_FILE) and the network
10.210.11.0/24; the toolchain comes from the shared cache.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab.worktree import copy_working_tree, lab_stack_config

from .conftest import inside_lab_switch, needs_root_and_nspawn

pytestmark = [pytest.mark.e2e, needs_root_and_nspawn,
              pytest.mark.skipif(inside_lab_switch(), reason="looks at the host's own network namespace")]

ROOT = Path(__file__).resolve().parents[2]
STACK = "runupdown"
NETWORK = "10.210.11.0/24"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"


def links() -> list[dict[str, object]]:
    """The host's routes to the lab network through the lab's link."""
    out = subprocess.run(["ip", "-j", "route", "show", "10.210.0.0/16"], capture_output=True, text=True,
                         check=True).stdout
    return [r for r in json.loads(out or "[]") if r.get("dev") == "hcl-host"]


def lab_machine_count() -> int:
    out = subprocess.run(["python3", "-m", "lab", "status", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return len(json.loads(out))


def block(hosts: str) -> dict[str, str]:
    """Name -> address in the stack's block of a hosts file."""
    lines = hosts.splitlines()
    begin, end = lines.index(f"# BEGIN hashicluster {STACK}"), lines.index(f"# END hashicluster {STACK}")
    return {name: line.split()[0] for line in lines[begin + 1:end] for name in line.split()[1:]}


def fetch(url: str, names: dict[str, str]) -> str:
    """URL with curl from this shell's network namespace, NAMES resolved as the hosts block says
    (curl --resolve: the host's /etc/hosts is left alone)."""
    host, _, port = url.split("/")[2].partition(":")
    proc = subprocess.run(["curl", "-sS", "--fail", "--max-time", "30", "--noproxy", "*",
                           "--resolve", f"{host}:{port or 80}:{names[host]}", url],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"curl {url}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "hashicluster"
    copy_working_tree(ROOT, repo)
    subprocess.run(["cp", "-al", str(ROOT / "venv"), str(repo / "venv")], check=True)
    (repo / f"Pulumi.{STACK}.yaml").write_text(lab_stack_config(ROOT, NETWORK))
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    env = dict(os.environ, HASHICLUSTER_STACK=STACK, HASHICLUSTER_STATE=str(tmp_path / "state"),
               HASHICLUSTER_HOSTS_FILE=str(hosts))
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        env.pop(name, None)  # ./run's own: a backend and passphrase in the state directory
    return repo, env


def test_run_up_opens_the_seed_urls_from_the_host_and_run_down_takes_back_names_and_link(
        checkout: tuple[Path, dict[str, str]]) -> None:
    repo, env = checkout
    hosts = Path(env["HASHICLUSTER_HOSTS_FILE"])
    had_link, others = bool(links()), lab_machine_count()

    def run(*args: str) -> None:
        proc = subprocess.run(["./run", *args], cwd=repo, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=1800, check=False)
        assert proc.returncode == 0, f"./run {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    try:
        run("up")
        names = block(hosts.read_text())
        assert names["frontend.lb.demo"] == "10.210.11.20" and names["client1.demo"] == "10.210.11.31"
        assert len(links()) == 1
        assert json.loads(fetch("http://frontend.lb.demo/fib/10", names))["fib"] == 55
        assert "<title>Consul" in fetch("http://frontend.lb.demo:8500/ui/", names)
        assert "Containers on client1.demo" in fetch("http://client1.demo:8080/", names)
    finally:
        run("down")
    assert hosts.read_text() == HOSTS
    if had_link or others:  # another stack's machines still use it
        assert len(links()) == 1
    else:
        assert links() == []
        assert "no link" in subprocess.run(["python3", "-m", "lab", "link", "status"], cwd=ROOT,
                                           capture_output=True, text=True, check=True).stdout
