"""Fixtures for tests of the real lab tool (root, systemd-nspawn, the cached base).

The real tests keep their machine state in a temporary directory (HASHICLUSTER_LAB_STATE)
but share the host's cached base (built on first use, about a minute) and the lab switch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_root_and_nspawn = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="real lab tests need root and systemd-nspawn (`python3 -m lab deps`)")


@dataclass
class Lab:
    """The lab tool with its own state and runtime directories."""

    state: Path
    runtime: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, input_text: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["python3", "-m", "lab", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, input=input_text, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} exited {proc.returncode}\n"
                                 f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def up_parallel(self, machines: dict[str, str]) -> dict[str, dict[str, Any]]:
        """`up` each NAME at its ADDRESS, all at once; their JSON outputs by name."""
        procs = {name: subprocess.Popen(["python3", "-m", "lab", "up", name, "--address", addr],
                                        cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, addr in machines.items()}
        infos = {}
        for name, p in procs.items():
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"up {name} failed:\n{err}"
            infos[name] = json.loads(out)
        return infos

    def ssh(self, name: str, command: str) -> str:
        return self.run("ssh", name, command).stdout.strip()

    def leftovers(self, names: list[str]) -> dict[str, list[str]]:
        """Everything of machines NAMES that could outlive them."""
        netns = [n for n in os.listdir("/run/netns") if n in {f"hcl-{m}" for m in names}] \
            if os.path.isdir("/run/netns") else []
        dirs = [str(self.state / "machines" / name) for name in names]

        def ours(text: str) -> bool:
            return any(d + "/" in text or text.endswith(d) or d + " " in text for d in dirs)

        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if ours(line.split()[1])]
        procs = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if ours(text) and ("systemd-nspawn" in text or "lab-machine" in text):
                procs.append(f"{cmdline.parent.name}: {text[:80]}")
        cgroups = [str(p) for name in names
                   for p in Path("/sys/fs/cgroup").glob(f"**/hashicluster-lab/{name}")]
        machines = [d.name for d in (self.state / "machines").glob("*") if d.name in names]
        return {"netns": netns, "mounts": mounts, "processes": procs, "cgroups": cgroups,
                "machine dirs": machines}


def other_lab_machines(lab: Lab) -> list[str]:
    """Lab namespaces that are not this test's: another lab is running on this host."""
    ours = {d.name for d in (lab.state / "machines").glob("*")}
    if not os.path.isdir("/run/netns"):
        return []
    return [n for n in os.listdir("/run/netns")
            if n.startswith("hcl-") and n != "hcl-lab" and n.removeprefix("hcl-") not in ours]


def inside_lab_switch() -> bool:
    """True if this process runs inside hcl-lab (clean-all would pull it from under us)."""
    path = Path("/run/netns/hcl-lab")
    return path.exists() and os.stat("/proc/self/ns/net").st_ino == path.stat().st_ino


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        pytest.skip("real lab tests need root and systemd-nspawn")
    base = tmp_path_factory.mktemp("lab")
    env = dict(os.environ, HASHICLUSTER_LAB_STATE=str(base / "state"),
               HASHICLUSTER_LAB_RUNTIME=str(base / "run"))
    tool = Lab(state=base / "state", runtime=base / "run", env=env)
    tool.run("base", timeout=900)  # builds the shared cached base once, if missing
    yield tool
    for d in sorted((tool.state / "machines").glob("*")):
        tool.run("down", d.name, check=False)
