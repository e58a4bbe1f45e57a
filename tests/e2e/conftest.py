"""End-to-end fixtures: the real Pulumi CLI against real lab machines.

One lab cluster (stack `e2e`, network 10.210.9.0/24) is shared by every test in the
session; the test marked `destroys_cluster` runs last. Run through `./run test`, which
provides the toolchain. Pulumi runs inside the lab network (`python3 -m lab exec`), like
`./run up` does it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.worktree import lab_stack_config, parallel_args
from toolchain.api import installed
from toolchain.errors import ToolchainError
from toolchain.paths import Layout
from toolchain.pins import load_pins
from toolchain.plugins import link_plugins

ROOT = Path(__file__).resolve().parents[2]
STACK = "e2e"
NETWORK = "10.210.9.0/24"
TIMINGS = Path(os.environ.get("HASHICLUSTER_TIMINGS", "/tmp/hashicluster-e2e-timings.json"))
# What a project checkout holds that the program needs (venv is linked, not copied).
PROJECT_FILES = ["Pulumi.yaml", "__main__.py", "cluster", "lab", "toolchain", "templates", "jobs",
                 "vagrantbox", "review", "stacks", "requirements.txt"]


def run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}"
                             f"\n--- stderr\n{proc.stderr}")
    return proc


@dataclass
class Project:
    """A copy of the project in a temporary directory with its own backend and stack."""

    path: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    destroyed: bool = False
    stack: str = STACK
    timings_file: Path = TIMINGS
    # Where the stack's machines are reachable: the lab network.
    runner: tuple[str, ...] = ("python3", "-m", "lab", "exec", "--")
    # Everything every pulumi command printed (for the tests that look for leaked secrets).
    transcript: list[str] = field(default_factory=list)

    def exec(self, *args: str, env: dict[str, str] | None = None, check: bool = True,
             timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        """ARGS through the runner, in the project copy."""
        return run([*self.runner, *args], cwd=self.path, env={**self.env, **(env or {})}, check=check,
                   timeout=timeout)

    def pulumi(self, *args: str, check: bool = True,
               timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        # ./run's --parallel, before a test's own flags.
        args = (*args[:1], *parallel_args(args), *args[1:])
        try:
            proc = self.exec("pulumi", *args, "--stack", self.stack, "--non-interactive", check=check,
                             timeout=timeout)
        except AssertionError as err:
            self.transcript.append(str(err))
            raise
        self.transcript += [proc.stdout, proc.stderr]
        return proc

    def timed(self, label: str, *args: str) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = self.pulumi(*args)
        self.timings[label] = round(time.monotonic() - start, 1)
        self.timings_file.write_text(json.dumps(self.timings, indent=2) + "\n")
        return proc

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json").stdout)  # type: ignore[no-any-return]

    def lab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["python3", "-m", "lab", *args], cwd=self.path, env=self.env, check=check)


def toolchain_path() -> str:
    """PATH with the toolchain's Pulumi CLI and language host first (the command provider is
    linked into each Pulumi home: `python3 -m toolchain plugins`)."""
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (lab machines): run `./run test` as root")
    try:
        dirs = [str(installed("pulumi").path.parent)]
        installed("pulumi-resource-command")  # linked into each test's Pulumi home
    except ToolchainError as err:
        pytest.fail(f"{err} (`./run test` provides the toolchain)")
    return os.pathsep.join([*dirs, os.environ.get("PATH", "")])


def project_copy(base: Path, stack: str, stack_config: str, passphrase: str) -> tuple[Path, dict[str, str]]:
    """A copy of the project under BASE with the stack file STACK, and the environment that
    runs the toolchain's Pulumi on a file backend of its own there."""
    path = base / "hashicluster"
    path.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, path / name)
    (path / "venv").symlink_to(ROOT / "venv")
    (path / f"Pulumi.{stack}.yaml").write_text(stack_config)
    return path, pulumi_env(base, passphrase)


def pulumi_env(base: Path, passphrase: str) -> dict[str, str]:
    """The environment that runs the toolchain's Pulumi on a file backend of its own under
    BASE, with the command provider linked into a Pulumi home there."""
    path_env = toolchain_path()
    backend = base / "backend"
    backend.mkdir()
    env = dict(os.environ)
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    env.update(PATH=path_env, PULUMI_HOME=str(base / "pulumi-home"),
               PULUMI_BACKEND_URL=f"file://{backend}", PULUMI_CONFIG_PASSPHRASE=passphrase,
               PULUMI_SKIP_UPDATE_CHECK="true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true")
    link_plugins(Layout.from_env(), load_pins(), Path(env["PULUMI_HOME"]))
    return env


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    stack_config = lab_stack_config(ROOT, NETWORK)
    path, env = project_copy(tmp_path_factory.mktemp("project"), STACK, stack_config, "e2e-passphrase")
    proj = Project(path, env)
    # Machines of an earlier, interrupted run of this stack would collide with ours.
    for machine in lab_machines(proj):
        proj.lab("down", machine)
    proj.pulumi("stack", "init")
    return proj


# On a machine, the project's own client settings for the APIs: CONSUL_HTTP_ADDR, NOMAD_SCHEME
# (http, or https with the cluster's CA) and `api`, curl with the CA. The tests use them as the
# install steps do, so they run the same with security on or off.
USE_API = ". /etc/consul.d/api.env; "


def on_machine(proj: Project, machine: str, command: str, check: bool = True) -> str:
    """COMMAND's stdout on a machine of the stack (by node name), with the API settings."""
    return proj.lab("ssh", f"{proj.stack}-{machine}", USE_API + command, check=check).stdout


def lab_machines(proj: Project) -> list[str]:
    status = json.loads(proj.lab("status", "--json").stdout)
    return sorted(m["name"] for m in status if m["name"].startswith(f"{proj.stack}-"))


@pytest.fixture(scope="session")
def cluster(project: Project) -> Iterator[dict[str, Any]]:
    """The shared cluster: `pulumi up` from nothing, once per session."""
    project.timed("first pulumi up", "up", "--yes", "--skip-preview")
    yield project.outputs()
    if not project.destroyed:  # the destroy test did not run (a subset was selected)
        project.pulumi("destroy", "--yes", check=False)
