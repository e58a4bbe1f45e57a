"""clean-all after a crash: a SIGKILLed systemd-nspawn and a lost record leave nothing behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lab import base, proc

from .conftest import Lab, inside_lab_switch, needs_root_and_nspawn, other_lab_machines

pytestmark = [pytest.mark.lab, needs_root_and_nspawn]


def test_clean_all_after_a_crash_leaves_nothing(lab: Lab) -> None:
    if inside_lab_switch():
        pytest.skip("clean-all removes hcl-lab, which this test process runs in")
    others = other_lab_machines(lab)
    if others:
        pytest.skip(f"clean-all would destroy other lab machines: {', '.join(others)}")
    names = {"lt-crash1": "10.210.250.21", "lt-crash2": "10.210.250.22"}
    lab.up_parallel(names)
    lab.run("forward", "18765", "10.210.250.21:22")
    # crash: SIGKILL one machine's systemd-nspawn (its systemd lives on, orphaned) ...
    root = lab.state / "machines" / "lt-crash1" / "root"
    killed = [p.pid for p in proc.processes()
              if p.exe_name == "systemd-nspawn" and f"--directory={root}" in p.argv]
    assert len(killed) == 1
    os.kill(killed[0], signal.SIGKILL)
    # ... and lose the other one's record and the runtime directory.
    (lab.state / "machines" / "lt-crash2" / "machine.json").unlink()
    lab.run("clean-all")
    assert lab.leftovers(list(names)) == {"netns": [], "mounts": [], "processes": [],
                                          "cgroups": [], "machine dirs": []}
    assert not lab.runtime.exists()
    assert not os.path.exists("/run/netns/hcl-lab")
    assert lab.run("forward", "--list").stdout == ""
    assert (lab.state / "ssh" / "id_ed25519").exists(), "clean-all keeps the SSH key"
    lab.run("clean-all")  # nothing left: still fine


def test_clean_all_purge_removes_every_base(lab: Lab, tmp_path: Path) -> None:
    if inside_lab_switch():
        pytest.skip("clean-all removes hcl-lab, which this test process runs in")
    others = other_lab_machines(lab)
    if others:
        pytest.skip(f"clean-all would destroy other lab machines: {', '.join(others)}")
    cache, state = tmp_path / "cache", tmp_path / "state"
    bases = ["base-bookworm", "base-bookworm-0123abcd", f"base-{base.key('bookworm')}",
             "base-trixie-89abcdef", ".base-bookworm-0123abcd.building-999999999"]
    for name in bases:
        (cache / "lab" / name / "etc").mkdir(parents=True)
    (state / "ssh").mkdir(parents=True)
    (state / "ssh" / "id_ed25519").write_text("key")
    env = dict(lab.env, HASHICLUSTER_CACHE=str(cache), HASHICLUSTER_LAB_STATE=str(state),
               HASHICLUSTER_LAB_RUNTIME=str(tmp_path / "run"))
    purge = Lab(state=state, runtime=tmp_path / "run", env=env).run("clean-all", "--purge")
    assert "base and SSH key removed too" in purge.stderr
    assert not (cache / "lab").exists()
    assert not state.exists()
