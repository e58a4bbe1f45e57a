"""What goes wrong on real machines, on the shared lab cluster: a machine that presents
another SSH host key, and a machine that dies in the middle of a change. Each run stops with
an error that names the machine, and the next `pulumi up` (once the machine is back)
converges. Both tests leave the cluster as they found it."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lab.machines import dirs
from lab.paths import Paths

from ..waiting import wait_until
from .conftest import STACK, Project, on_machine

pytestmark = pytest.mark.e2e

CLIENT3 = "10.210.9.33"
# A runtime drop-in for Nomad's unit (under /run: gone when the machine powers off): a start
# of Nomad, such as the roll step's restart, marks HELD and then waits for as long as the
# drop-in exists, so the roll step cannot finish before the test has powered the machine off.
HOLD = "/run/systemd/system/nomad.service.d/hashicluster-test-hold.conf"
HELD = "/run/hashicluster-test-nomad-held"
HOLD_UNIT = f"""[Service]
ExecStartPre=/bin/sh -c 'touch {HELD}; while [ -e {HOLD} ]; do sleep 0.2; done'
TimeoutStartSec=infinity
"""


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


def held(project: Project) -> bool:
    """A start of Nomad on client3 waits in HOLD_UNIT."""
    return on_machine(project, "client3", f"test -e {HELD} && echo held", check=False).strip() == "held"


def test_a_machine_that_dies_mid_change_converges_on_the_next_up(project: Project,
                                                                  cluster: dict[str, Any]) -> None:
    """client3 is powered off while its roll step restarts Nomad: the run fails on client3;
    with the machine back, the next run finishes the change.

    The restart is held (HOLD_UNIT) until the machine is off, so the power-off always lands
    in the middle of the roll step, however fast or slow the host: without the hold the step
    could finish, and the run succeed, between the test seeing the restart and the power-off.
    """
    machine = f"{STACK}-client3"
    on_machine(project, "client3", f"rm -f {HELD}; mkdir -p {Path(HOLD).parent} && "
               f"cat > {HOLD} <<'EOF'\n{HOLD_UNIT}EOF\nsystemctl daemon-reload")
    stopped = False

    def release_hold() -> None:
        """Unless the machine is off (which took the hold with it): let a held restart go on."""
        if not stopped:
            on_machine(project, "client3", f"rm -f {HOLD} {HELD}; systemctl daemon-reload", check=False)

    try:
        set_meta(project, "mid-change")
        with ThreadPoolExecutor(max_workers=1) as pool:
            up = pool.submit(project.pulumi, "up", "--yes", "--skip-preview", check=False)
            try:
                # The roll step restarts Nomad on client3, which waits in HOLD_UNIT: power the
                # machine off while it does.
                wait_until("the roll step restarting Nomad on client3 (held before Nomad starts)",
                           lambda: up.done() or held(project))
                assert not up.done(), "the run ended before its roll step restarted Nomad on client3"
                project.lab("stop", machine)
                stopped = True
            finally:
                release_hold()  # before waiting for the run, which a held restart would block
            proc = up.result()
    finally:
        release_hold()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "client3-roll" in out and "failed" in out, out[-3000:]
    # Back on (same disk, and the settings the program made it with: a client runs
    # containers): the next run restarts what is still pending there and converges.
    project.lab("up", machine, "--address", CLIENT3, "--containers")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    assert on_machine(project, "client3", "ls /var/lib/hashicluster/restart/ | wc -l").strip() == "0"
    nodes = on_machine(project, "root-server", "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646 "
                       "nomad node status -verbose | grep client3")
    assert "ready" in nodes
    project.pulumi("config", "rm", "--path", "hashicluster:clientSettings.client3")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    # fib lost its instance on client3 meanwhile: Nomad places it again.
    def running_fib() -> int:
        allocs = json.loads(on_machine(project, "root-server", "NOMAD_ADDR=$NOMAD_SCHEME://10.210.9.10:4646 "
                                       "nomad job allocs -json fib"))
        return len([a for a in allocs if a["ClientStatus"] == "running"])

    wait_until("fib back to 3 running allocations", lambda: running_fib() == 3, poll=1)
