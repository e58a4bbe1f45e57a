"""`python3 -m review run`: what would the working tree's change do to a running cluster?

1. The base revision (`--base`, default `origin/main`, else `HEAD`) is exported from git into a
   directory of its own; unless the review stack already runs that revision, `pulumi up`
   brings the lab cluster to it (the stack is kept between runs, so the next review of the
   same base reuses it).
2. The working tree (tracked files plus new, not ignored ones) is copied next to it and
   previewed against that state: `pulumi preview --diff --json` and the same as text.
3. The summary (review/summary.py) goes to OUT/summary.md, with preview.json and
   preview.diff.txt beside it.

Both trees run on the review stack's own lab network (`--network`, not the `lab` stack's),
with the stack configuration each tree's `stacks/lab.yaml` gives, so a change to the stack
file is part of what is reviewed. Pulumi runs inside the lab network (`python3 -m lab exec`),
with the backend and passphrase of the environment (PULUMI_BACKEND_URL,
PULUMI_CONFIG_PASSPHRASE[_FILE]), which `./run review` provides.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from lab import worktree
from lab.errors import LabError
from review import summary

DEFAULT_STACK = "review"
DEFAULT_NETWORK = "10.210.5.0/24"


class ReviewError(Exception):
    """A step of the review failed; the message names it and the fix."""


def log(message: str) -> None:
    print(f"review: {message}", file=sys.stderr, flush=True)


def git(repo: Path, *args: str, binary: bool = False) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise ReviewError(f"`git {' '.join(args)}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout if binary else proc.stdout.strip()


def resolve_base(repo: Path, base: str | None) -> str:
    """The commit to review against: BASE, or origin/main when it exists, else HEAD."""
    candidates = [base] if base else ["origin/main", "HEAD"]
    for rev in candidates:
        proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                               f"{rev}^{{commit}}"], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
    raise ReviewError(f"{candidates[0]!r} is not a commit of {repo}. Fix: pass --base REV "
                      "(a branch, tag or commit; fetch it first in a shallow clone)")


def export_revision(repo: Path, commit: str, dest: Path) -> None:
    """The tree of COMMIT, as files in DEST."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(git(repo, "archive", "--format=tar", commit, binary=True))) as tar:
        tar.extractall(dest, filter="data")


def copy_working_tree(repo: Path, dest: Path) -> None:
    """Tracked files as they are now, plus new files git does not ignore (into a fresh DEST)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        worktree.copy_working_tree(repo, dest)
    except LabError as err:
        raise ReviewError(str(err)) from None


def prepare(tree: Path, repo: Path, stack: str, network: str) -> None:
    """Give TREE the project's virtualenv and a stack file for STACK on NETWORK."""
    venv = tree / "venv"
    if not venv.exists():
        venv.symlink_to(repo / "venv")
    try:
        config = worktree.lab_stack_config(tree, network)
    except LabError as err:
        raise ReviewError(str(err)) from None
    (tree / f"Pulumi.{stack}.yaml").write_text(config)


@dataclass
class Pulumi:
    """The Pulumi CLI inside the lab network, for one stack."""

    stack: str

    def run(self, tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["python3", "-m", "lab", "exec", "--", "pulumi", *args, "--stack", self.stack,
               "--non-interactive"]
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise ReviewError(f"`pulumi {' '.join(args)}` in {tree} exited {proc.returncode}:\n"
                              f"{(proc.stderr or proc.stdout).strip()[-3000:]}")
        return proc

    def ensure_stack(self, tree: Path) -> None:
        if self.run(tree, "stack", "select", check=False).returncode != 0:
            self.run(tree, "stack", "init")

    def resource_count(self, tree: Path) -> int:
        proc = self.run(tree, "stack", "export", check=False)
        return proc.stdout.count('"urn":') if proc.returncode == 0 else 0


def review(repo: Path, base: str | None, out: Path, stack: str, network: str, work: Path,
           max_chars: int) -> Path:
    """Bring the review stack to the base revision, preview the working tree, write the summary."""
    commit = resolve_base(repo, base)
    base_tree, head_tree = work / "base", work / "head"
    export_revision(repo, commit, base_tree)
    copy_working_tree(repo, head_tree)
    for tree in (base_tree, head_tree):
        prepare(tree, repo, stack, network)
    pulumi = Pulumi(stack)
    pulumi.ensure_stack(base_tree)
    marker = work / f"{stack}.base"
    deployed = marker.read_text().strip() if marker.is_file() else ""
    if deployed == commit and pulumi.resource_count(base_tree) > 0:
        log(f"the stack {stack} already runs {commit[:12]}: reusing it")
    else:
        log(f"pulumi up: the stack {stack} to the base {commit[:12]} (network {network})")
        marker.unlink(missing_ok=True)
        pulumi.run(base_tree, "up", "--yes", "--skip-preview")
        marker.write_text(commit + "\n")
    log("pulumi preview of the working tree against it")
    preview_json = pulumi.run(head_tree, "preview", "--diff", "--json").stdout
    preview_text = pulumi.run(head_tree, "preview", "--diff").stdout
    out.mkdir(parents=True, exist_ok=True)
    (out / "preview.json").write_text(preview_json)
    (out / "preview.diff.txt").write_text(preview_text)
    text = summary.markdown(preview_json, preview_text, max_chars, "the workflow's artifacts")
    (out / "summary.md").write_text(text)
    return out / "summary.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="the revision the cluster runs (default: origin/main, else HEAD)")
    parser.add_argument("--out", type=Path, default=Path(".hashicluster/review"),
                        help="where summary.md, preview.json and preview.diff.txt go (%(default)s)")
    parser.add_argument("--stack", default=DEFAULT_STACK, help="the review stack (%(default)s)")
    parser.add_argument("--network", default=DEFAULT_NETWORK,
                        help="its lab network, apart from the lab stack's (%(default)s)")
    state = Path(os.environ.get("HASHICLUSTER_STATE", "/var/lib/hashicluster"))
    parser.add_argument("--work", type=Path, default=state / "review",
                        help="where the two trees are laid out and the base is remembered (%(default)s)")
    parser.add_argument("--max-chars", type=int, default=summary.DEFAULT_MAX_CHARS,
                        help="cut the full diff so that summary.md fits (%(default)s)")
    parser.add_argument("--destroy", action="store_true",
                        help="destroy the review stack's cluster (kept between reviews otherwise) and stop")


def destroy(stack: str, work: Path) -> None:
    """`pulumi destroy` the review stack from the base tree it was brought up from."""
    base_tree = work / "base"
    if not (base_tree / f"Pulumi.{stack}.yaml").is_file():
        log(f"no review stack {stack} was brought up from {work}: nothing to destroy")
        return
    log(f"pulumi destroy: the stack {stack}")
    Pulumi(stack).run(base_tree, "destroy", "--yes")
    (work / f"{stack}.base").unlink(missing_ok=True)


def main(args: argparse.Namespace) -> int:
    if args.destroy:
        destroy(args.stack, args.work.absolute())
        return 0
    repo = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").decode())
    path = review(repo, args.base, args.out.absolute(), args.stack, args.network, args.work.absolute(),
                  args.max_chars)
    sys.stdout.write(path.read_text())
    log(f"written: {path} (and preview.json, preview.diff.txt beside it)")
    return 0
