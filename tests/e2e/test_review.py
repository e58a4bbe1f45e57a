"""The review flow on the shared lab cluster: `pulumi preview --diff` as the summary a reviewer
reads. Three representative edits are previewed (never applied) and their summaries must
list exactly the expected machines and steps; no secret may show in any of it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from review.summary import markdown, summarize
from toolchain.api import installed

from .conftest import STACK, Project

pytestmark = pytest.mark.e2e

NOMAD_NODES = ("root-server", "client1", "client2", "client3")
OTHER_VERSION = "1.6.2"  # the toolchain's second Nomad (python3 -m toolchain ensure nomad@1.6.2)


@pytest.fixture
def stack_file(project: Project) -> Iterator[Path]:
    """The stack's config file, restored byte for byte after the test's edit."""
    path = project.path / f"Pulumi.{STACK}.yaml"
    before = path.read_text()
    yield path
    path.write_text(before)


def preview(project: Project) -> tuple[str, str]:
    """The preview as JSON and as text, like `python3 -m review run` takes them."""
    return (project.pulumi("preview", "--diff", "--json").stdout,
            project.pulumi("preview", "--diff").stdout)


def secrets(project: Project) -> list[str]:
    """The real secret values a review could leak: the passphrase and the machines' SSH key."""
    key = (Path("/var/lib/hashicluster/lab/ssh/id_ed25519")).read_text()
    body = [line for line in key.splitlines() if line and not line.startswith("-----")]
    assert body, "the lab key has no body to look for"
    return [project.env["PULUMI_CONFIG_PASSPHRASE"], *body]


def assert_no_secret(project: Project, *texts: str) -> None:
    for secret in secrets(project):
        for text in texts:
            assert secret not in text


def test_preview_of_the_running_cluster_expects_no_changes(project: Project,
                                                           cluster: dict[str, Any]) -> None:
    proc = project.pulumi("preview", "--diff", "--expect-no-changes")
    assert_no_secret(project, proc.stdout, proc.stderr)
    assert summarize(preview(project)[0]).machines == {}


def _client_setting(project: Project) -> None:
    project.pulumi("config", "set", "--path", "hashicluster:clientSettings.client1.meta.zone", "z1")


def _nomad_version(project: Project) -> None:
    binary = installed("nomad", version=OTHER_VERSION)
    project.pulumi("config", "set", "--path", "hashicluster:nomad.version", OTHER_VERSION)
    project.pulumi("config", "set", "--path", "hashicluster:nomad.sha256", binary.sha256)


def _add_client(project: Project) -> None:
    project.pulumi("config", "set", "hashicluster:clients", "4")


NEW_CLIENT = ["client4", "client4-lab", "client4-identity", "client4-consul", "client4-consul-upload",
              "client4-dnsmasq", "client4-docker", "client4-nomad", "client4-nomad-upload",
              "client4-cadvisor", "client4-cadvisor-upload", "client4-roll", "client4-rejoin",
              "client4-credentials", "client4-power", "client4-state"]

EDITS: dict[str, tuple[Callable[[Project], None], dict[str, dict[str, list[str]]]]] = {
    # One client's Nomad setting: that client's Nomad step, its turn to restart it and the
    # rejoin check that follows every client's turn.
    "client setting": (_client_setting, {"client1": {"updated": ["client1-nomad", "client1-rejoin",
                                                                 "client1-roll"]}}),
    # Another Nomad version: on every Nomad machine the binary is copied anew, the agent step
    # updated (staged) and the machine's turn in the roll restarts it; the servers' gate checks
    # the new version. Consul and the LB untouched.
    "nomad version": (_nomad_version, {
        "root-server": {"replaced": ["root-server-nomad-upload"],
                        "updated": ["nomad-servers-ready", "root-server-nomad", "root-server-roll"]},
        **{c: {"replaced": [f"{c}-nomad-upload"], "updated": [f"{c}-nomad", f"{c}-rejoin", f"{c}-roll"]}
           for c in ("client1", "client2", "client3")},
    }),
    # A fourth client: its machine, key, certificate and steps are new; every machine's
    # /etc/hosts block names it, Consul's ACLs get its token, and the cluster gate waits for
    # four Nomad clients.
    "add a client": (_add_client, {
        "root-server": {"updated": ["cluster-ready", "consul-acl", "root-server-identity"]},
        "frontend-lb": {"updated": ["frontend-lb-identity"]},
        **{c: {"updated": [f"{c}-identity"]} for c in ("client1", "client2", "client3")},
        "client4": {"created": sorted(NEW_CLIENT)},
    }),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_summary_of_an_edit_lists_exactly_its_steps(project: Project, cluster: dict[str, Any],
                                                    stack_file: Path, edit: str) -> None:
    change, expected = EDITS[edit]
    change(project)
    preview_json, preview_text = preview(project)
    assert summarize(preview_json).machines == expected
    text = markdown(preview_json, preview_text)
    for machine in expected:
        assert f"| {machine} |" in text or f"| `{machine}` |" in text, text
    assert_no_secret(project, preview_json, preview_text, text)


def test_review_run_previews_the_working_tree_against_the_base(project: Project, cluster: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """`python3 -m review run` end to end: a git checkout whose working tree adds a client
    setting, its base revision brought up on a stack and network of its own, then reused."""
    repo = tmp_path / "repo"
    shutil.copytree(project.path, repo, symlinks=True,
                    ignore=shutil.ignore_patterns("venv", ".hashicluster", f"Pulumi.{STACK}.yaml"))
    (repo / "venv").symlink_to(project.path / "venv")
    (repo / ".gitignore").write_text("venv\n.hashicluster/\nPulumi.*review*.yaml\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    lab_file = repo / "stacks" / "lab.yaml"
    lab_file.write_text(lab_file.read_text() + "  hashicluster:clientSettings:\n"
                        "    client3:\n      nodeClass: batch\n")
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = ["python3", "-m", "review", "run", "--base", "main", "--stack", "e2e-review",
           "--network", "10.210.8.0/24", "--out", str(out), "--work", str(work)]
    try:
        first = subprocess.run(cmd, cwd=repo, env=project.env, capture_output=True, text=True, timeout=900)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "pulumi up: the stack e2e-review to the base" in first.stderr
        summary = json.loads(json.dumps(summarize((out / "preview.json").read_text()).machines))
        assert summary == {"client3": {"updated": ["client3-nomad", "client3-rejoin", "client3-roll"]}}
        text = (out / "summary.md").read_text()
        assert first.stdout == text and "client3-nomad" in text and "Full diff" in text
        again = subprocess.run(cmd, cwd=repo, env=project.env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "already runs" in again.stderr and "pulumi up" not in again.stderr
        logs = [first.stdout, first.stderr, again.stdout, again.stderr]
        files = [p.read_text() for p in out.iterdir()]
        assert_no_secret(project, *logs, *files)
    finally:
        down = subprocess.run([*cmd, "--destroy"], cwd=repo, env=project.env, capture_output=True,
                              text=True, timeout=900)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "pulumi destroy: the stack e2e-review" in down.stderr
    assert not (work / "e2e-review.base").exists()
