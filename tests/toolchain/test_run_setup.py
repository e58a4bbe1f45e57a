"""`./run setup --source release|build`: the toolchain's source for that run.

The script runs from a copy in a temporary directory, with a stand-in Python that records how
it is called and stand-ins for the host tools `setup` looks for, so nothing is installed and
the repository's venv, the toolchain cache and the lab are left alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "ssh", "git")
RECORDER = """#!/bin/sh
echo "source=${HASHICLUSTER_TOOLCHAIN_SOURCE:-unset} args=$*" >> "$RUN_LOG"
"""
# The venv's Python also answers ./run's question about the stack file: a lab stack.
VENV_RECORDER = RECORDER + """[ "$1 $2 $3" = "-m cluster.stackfile provider" ] && echo nspawn
exit 0
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="./run refuses to run without root")


def run_copy(tmp_path: Path) -> Path:
    """A copy of ./run beside its requirements and a venv stand-in that is up to date."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / "run", repo / "run")
    shutil.copytree(ROOT / "stacks", repo / "stacks")
    requirements = b""
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, repo / name)
        requirements += (ROOT / name).read_bytes()
    venv_bin = repo / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    executable(venv_bin / "python", VENV_RECORDER)
    (repo / "venv" / ".requirements.sha256").write_text(hashlib.sha256(requirements).hexdigest() + "\n")
    return repo


def executable(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def run_setup(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `./run setup ARGS` on the copy; return the process and the recorded Python calls."""
    repo = tmp_path / "repo" if (tmp_path / "repo").exists() else run_copy(tmp_path)
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in HOST_TOOLS:
        executable(stubs / tool, "#!/bin/sh\nexit 0\n")
    python = executable(stubs / "recording-python", RECORDER)
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "HASHICLUSTER_TOOLCHAIN_SOURCE"}
    env.update(PATH=f"{stubs}:/usr/bin:/bin", HASHICLUSTER_PYTHON=str(python), RUN_LOG=str(log),
               HASHICLUSTER_STATE=str(tmp_path / "state"))
    proc = subprocess.run([str(repo / "run"), "setup", *args], env=env, text=True, capture_output=True,
                          timeout=60, check=False)
    return proc, log.read_text().splitlines()


@pytest.mark.parametrize("source", ["release", "build"])
def test_setup_source_sets_the_toolchain_source_for_the_run(tmp_path: Path, source: str) -> None:
    proc, calls = run_setup(tmp_path, "--source", source)
    assert proc.returncode == 0, proc.stderr
    assert f"source={source} args=-m toolchain ensure" in calls
    assert f"source={source} args=-m lab base" in calls


def test_setup_without_source_leaves_the_default(tmp_path: Path) -> None:
    proc, calls = run_setup(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "source=unset args=-m toolchain ensure" in calls


@pytest.mark.parametrize("args", [["--source"], ["--source", "magic"], ["--bogus"],
                                  ["--source", "release", "extra"]])
def test_setup_refuses_other_arguments_before_doing_anything(tmp_path: Path, args: list[str]) -> None:
    proc, calls = run_setup(tmp_path, *args)
    assert proc.returncode == 1
    assert "usage: ./run setup [--source release|build]" in proc.stderr
    assert calls == []
