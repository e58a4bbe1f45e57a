"""A copy of the project for a lab stack of its own, apart from the `lab` stack: what the
review (review/run.py), the benchmark (bench/) and the end-to-end tests run Pulumi in."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lab.errors import LabError

# The lab stack's preset: `./run` makes the checkout's own Pulumi.lab.yaml from it (Pulumi writes
# the passphrase's salt there, so the tracked file stays as it is), and copies start from it.
LAB_STACK_FILE = "stacks/lab.yaml"
LAB_NETWORK_LINE = "network: 10.210.1.0/24"
PARALLEL_COMMANDS = ("up", "destroy", "preview", "refresh")  # those ./run gives its --parallel


def parallel_args(args: Sequence[str]) -> list[str]:
    """`--parallel N` for the pulumi command ARGS when ./run would give it one (it exports
    HASHICLUSTER_PARALLEL and passes it to up, destroy, preview and refresh), else nothing."""
    parallel = os.environ.get("HASHICLUSTER_PARALLEL")
    return ["--parallel", parallel] if parallel and args and args[0] in PARALLEL_COMMANDS else []


def copy_working_tree(repo: Path, dest: Path) -> None:
    """The working tree of REPO as it is now: tracked files plus new files git does not ignore."""
    proc = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                           "--exclude-standard"], capture_output=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"cannot list the files of {repo} with git: "
                       f"{proc.stderr.decode(errors='replace').strip()}",
                       "run it from a git checkout of the project")
    for name in filter(None, proc.stdout.decode().split("\0")):
        src = repo / name
        if src.is_file() and not src.is_symlink():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def lab_stack_config(tree: Path, network: str) -> str:
    """The lab stack's config of TREE with its machines on NETWORK instead."""
    source = tree / LAB_STACK_FILE
    if not source.is_file():
        raise LabError(f"{LAB_STACK_FILE} is missing in {tree}", "keep the lab stack's file in the project")
    text = source.read_text()
    if LAB_NETWORK_LINE not in text:
        raise LabError(f"{LAB_STACK_FILE} has no `{LAB_NETWORK_LINE}` line to move to the network {network}",
                       "keep the lab stack's network at 10.210.1.0/24")
    return text.replace(LAB_NETWORK_LINE, f"network: {network}")
