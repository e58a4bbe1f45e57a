"""`./run` itself, run from a copy in a temporary directory, with a stand-in Python that
records how it is called and stand-ins for the host tools `setup` looks for, so nothing is
installed and the repository's venv, the toolchain cache and the lab are left alone."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "ssh", "git")
RECORDER = """#!/bin/sh
echo "source=${HASHICLUSTER_TOOLCHAIN_SOURCE:-unset} args=$*" >> "$RUN_LOG"
"""
# The venv's Python also answers ./run's question about the stack file: a lab stack.
VENV_RECORDER = RECORDER + """[ "$1 $2 $3" = "-m cluster.stackfile provider" ] && echo nspawn
exit 0
"""

# The lab stack's commands refuse to run without root (`setup` and what calls it).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="./run refuses to run without root")


def executable(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(0o755)
    return path


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


def run_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `./run ARGS` on the copy; return the process and the recorded Python calls."""
    repo = tmp_path / "repo" if (tmp_path / "repo").exists() else run_copy(tmp_path)
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in HOST_TOOLS:
        executable(stubs / tool, "#!/bin/sh\nexit 0\n")
    python = executable(stubs / "recording-python", RECORDER)
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HASHICLUSTER_TOOLCHAIN_SOURCE", "HASHICLUSTER_STACK")}
    env.update(PATH=f"{stubs}:/usr/bin:/bin", HASHICLUSTER_PYTHON=str(python), RUN_LOG=str(log),
               HASHICLUSTER_STATE=str(tmp_path / "state"))
    proc = subprocess.run([str(repo / "run"), *args], env=env, text=True, capture_output=True,
                          timeout=300, check=False)
    return proc, log.read_text().splitlines()
