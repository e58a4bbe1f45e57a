"""A running cluster is not disturbed by a new version of the program.

A cluster brought up by an earlier commit (UPGRADE_FROM, stack `e2e-upgrade`, network
10.210.6.0/24) is previewed with this working tree, the way a user reviews an upgrade
(`python3 -m review run`): steps are updated in place, nothing is deleted, nothing but an
upload is replaced, and the only resources created are the new steps this upgrade adds.
Then `pulumi up` applies it while fib is under load through the load balancer: no request may
fail, only scripts and triggers changed, and the next preview is empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from review.summary import CREATED, DELETED, REPLACED, UPDATED, summarize

from .conftest import ROOT, Project, lab_machines, pulumi_env, run
from .load import load

pytestmark = pytest.mark.e2e

# The program users may be running: the release that ran fib in containers with raw_exec still
# on (expand); this tree turns raw_exec off where no listed job uses it (contract). Move it
# forward when a release's stacks are the ones to upgrade from. Lab machines have no Debian
# mirror: what a new step installs from Debian must be in the lab base of the machines
# UPGRADE_FROM made (a real machine's apt would fetch it).
# (Upgrades from c9e4131, whose clients reboot to get containers, and from dd64ceb, fib on
# raw_exec to containers, passed with this test: 0 failed requests.)
UPGRADE_FROM = "c4d8127"
STACK = "e2e-upgrade"
NETWORK = "10.210.6.0/24"
LB = "10.210.6.20"
# The inputs of a Command step that hold its scripts and what makes it run again: an upgrade
# changes these and no other.
SCRIPT_INPUTS = {"create", "update", "delete", "triggers"}
# Inputs that come from the outputs of other steps (tokens, secret files): in a preview they are
# unknown, and shown as changing, wherever a step they come from will update. The up shows
# that they kept their values.
FROM_UPDATED_STEPS = {"stdin"}
# Inputs that this upgrade changes on purpose, beyond scripts and triggers: fib's job runs a
# new build of its image (the recipe of its base image changed: templates/images/), and its
# health check runs every second, healthy after a second (jobs/fib.nomad.hcl).
NEW_INPUTS: dict[str, set[str]] = {"job-fib": {"variables", "hcl"}}
# Every upload lands in a new place: /var/lib/hashicluster/uploads, which a login that is not
# root may write to (existing machines over SSH), and is the binary packed with gzip.
UPLOAD_INPUTS = {"remotePath", "source"}


def allowed(name: str) -> set[str]:
    """The inputs this upgrade may change on resource NAME besides its scripts."""
    return NEW_INPUTS.get(name, set()) | (UPLOAD_INPUTS if name.endswith("-upload") else set())

# What this upgrade adds (the clients' Nomad steps change too: raw_exec off): the stack's
# Teardown (named after the stack; the steps on the lab machines are deleted with it) and
# the check after client1's roll turn that fib's image is in the registry.
NEW_STEPS = {STACK, "fib-image-pushed"}


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Path]]:
    """The review of this tree against a cluster of UPGRADE_FROM: (the working tree's project
    on that stack, the review's output directory). The cluster is destroyed afterwards."""
    if run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{UPGRADE_FROM}^{{commit}}"],
           check=False).returncode != 0:
        pytest.fail(f"commit {UPGRADE_FROM} is not in {ROOT}'s history: the upgrade test needs a "
                    "full clone (git fetch --unshallow)")
    base = tmp_path_factory.mktemp("upgrade")
    env = pulumi_env(base, "upgrade-passphrase")
    work, out = base / "work", base / "out"
    head = Project(work / "head", env, stack=STACK)
    for machine in lab_machines(Project(ROOT, env, stack=STACK)):  # left by an interrupted run
        run(["python3", "-m", "lab", "down", machine], cwd=ROOT, env=env)
    review = ["python3", "-m", "review", "run", "--base", UPGRADE_FROM, "--stack", STACK,
              "--network", NETWORK, "--out", str(out), "--work", str(work)]
    try:
        run(review, cwd=ROOT, env=env, timeout=1800)
        yield head, out
    finally:
        head.pulumi("destroy", "--yes", check=False)  # from the state: either tree would do
        assert not lab_machines(head), "the upgrade stack's machines outlived its destroy"


def test_the_preview_of_an_upgrade_updates_only_changed_scripts(upgraded: tuple[Project, Path]) -> None:
    _, out = upgraded
    preview = json.loads((out / "preview.json").read_text())
    summary = summarize(preview)
    assert summary.errors == 0 and not summary.unknown_ops, summary
    totals = summary.totals
    print(f"upgrade from {UPGRADE_FROM}: {totals[UPDATED]} steps to update, {totals[CREATED]} to create")
    assert totals[DELETED] == 0, summary.machines
    # Replaced: only uploads (a copy made again; the machines and their steps stay).
    replaced = [name for c in summary.machines.values() for name in c.get(REPLACED, [])]
    assert all(name.endswith("-upload") for name in replaced), replaced
    assert totals[UPDATED] > 0, "the working tree changes no script: the test shows nothing"
    created = {step["urn"].rsplit("::", 1)[-1] for step in preview["steps"] if step["op"] == "create"}
    assert created == NEW_STEPS, created
    inputs = {name: set(keys) for name, keys in summary.keys.items()}
    assert all(keys <= SCRIPT_INPUTS | FROM_UPDATED_STEPS | allowed(name)
               for name, keys in inputs.items()), inputs
    assert any(keys & SCRIPT_INPUTS for keys in inputs.values()), inputs


Inputs = dict[str, dict[str, Any]]  # URN -> the resource's inputs


def inputs_by_resource(project: Project) -> Inputs:
    """Each resource's inputs in the stack's state, secrets in clear (kept in memory only)."""
    state = json.loads(project.pulumi("stack", "export", "--show-secrets").stdout)
    return {r["urn"]: r.get("inputs", {}) for r in state["deployment"]["resources"]}


def changed_inputs(before: Inputs, after: Inputs) -> dict[str, list[str]]:
    """Resource name -> the input keys whose values differ (names only: values may be secret)."""
    changed = {}
    for urn in before.keys() & after.keys():  # what the upgrade created is new, not changed
        old, new = before.get(urn, {}), after.get(urn, {})
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if keys:
            changed[urn.rsplit("::", 1)[-1]] = keys
    return changed


def test_pulumi_up_upgrades_the_cluster_with_no_failed_request(upgraded: tuple[Project, Path]) -> None:
    head, _ = upgraded
    before = inputs_by_resource(head)
    with load(head, LB) as result:
        head.pulumi("up", "--yes", "--skip-preview")
    print(f"upgrade from {UPGRADE_FROM} under load: {result}")
    assert result.failed == 0, result
    assert result.during > 0, result
    changed = changed_inputs(before, inputs_by_resource(head))
    beyond = {name: sorted(set(keys) - SCRIPT_INPUTS - allowed(name))
              for name, keys in changed.items()}
    assert changed and not any(beyond.values()), {n: k for n, k in beyond.items() if k}
    head.pulumi("preview", "--expect-no-changes")
    answer = json.loads(head.exec("curl", "-sf", "-m", "5", f"http://{LB}/fib/10").stdout)
    assert answer["fib"] == 55, answer

