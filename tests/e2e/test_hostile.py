"""What goes wrong on real machines, on the shared lab cluster: a machine that presents
another SSH host key, and a machine that dies in the middle of a change. Each run stops with
an error that names the machine, and the next `pulumi up` (once the machine is back)
converges. Both tests leave the cluster as they found it."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from lab.machines import dirs
from lab.paths import Paths

from .conftest import STACK, Project, on_machine

CLIENT3 = "10.210.9.33"


def machine_root(name: str) -> Path:
    return dirs(Paths.from_env(), name).root


def set_meta(project: Project, value: str) -> None:
    project.pulumi("config", "set", "--path", "hashicluster:clientSettings.client3.meta.probe", value)


def test_a_changed_host_key_stops_the_run(project: Project, cluster: dict[str, Any], tmp_path: Path) -> None:
    """client3 presents a new ed25519 host key (sshd reads it on each connection): the run
    stops at its first step there, naming the address and both keys' fingerprints."""
    keys = machine_root(f"{STACK}-client3") / "etc" / "ssh"
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
        shutil.copy2(keys / name, saved / name)
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "new")],
                       check=True)
        shutil.copy2(tmp_path / "new", keys / "ssh_host_ed25519_key")
        shutil.copy2(tmp_path / "new.pub", keys / "ssh_host_ed25519_key.pub")
        set_meta(project, "hostkey")
        proc = project.pulumi("up", "--yes", "--skip-preview", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"host key mismatch for {CLIENT3}:22: expected ssh-ed25519 SHA256:" in out, out[-3000:]
        assert "client3-nomad" in out
    finally:
        for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            shutil.copy2(saved / name, keys / name)
    # The right key again: the same change goes through.
    project.pulumi("up", "--yes", "--skip-preview")
    assert on_machine(project, "client3", "grep -c hostkey /etc/nomad.d/client.hcl").strip() == "1"
    project.pulumi("config", "rm", "--path", "hashicluster:clientSettings.client3")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")


def test_a_machine_that_dies_mid_change_converges_on_the_next_up(project: Project,
                                                                  cluster: dict[str, Any]) -> None:
    """client3 is powered off while its roll step waits for the restarted Nomad agent: the
    run fails on client3; with the machine back, the next run finishes the change."""
    machine = f"{STACK}-client3"
    started = on_machine(project, "client3", "systemctl show nomad -p ActiveEnterTimestampMonotonic").strip()
    set_meta(project, "mid-change")
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    up = threading.Thread(target=lambda: result.setdefault(
        "up", project.pulumi("up", "--yes", "--skip-preview", check=False)))
    up.start()
    try:
        # The roll step restarts Nomad on client3: power the machine off at that moment.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = on_machine(project, "client3", "systemctl show nomad -p ActiveEnterTimestampMonotonic",
                             check=False).strip()
            if now and now != started:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the roll never restarted Nomad on client3")
        project.lab("stop", machine)
    finally:
        up.join(600)
    proc = result["up"]
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "client3-roll" in out and "failed" in out, out[-3000:]
    # Back on (same disk): the next run restarts what is still pending there and converges.
    project.lab("up", machine, "--address", CLIENT3)
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    assert on_machine(project, "client3", "ls /var/lib/hashicluster/restart/ | wc -l").strip() == "0"
    nodes = on_machine(project, "root-server", "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646 "
                       "nomad node status -verbose | grep client3")
    assert "ready" in nodes
    project.pulumi("config", "rm", "--path", "hashicluster:clientSettings.client3")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    # fib lost its instance on client3 meanwhile: Nomad has placed it again.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        allocs = json.loads(on_machine(project, "root-server", "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646 "
                                       "nomad job allocs -json fib"))
        if len([a for a in allocs if a["ClientStatus"] == "running"]) == 3:
            break
        time.sleep(1)
    else:
        raise AssertionError("fib is not back to 3 running allocations")
