"""The lab end to end on a systemd 257 + cgroup v2 host: a Debian trixie VM under QEMU TCG.

The VM (hostvm/) boots from a disk image the project builds (cached by its recipe), gets
this checkout, the host's toolchain, the lab base and the Python wheels on a share disk, and
runs templates/hostvm/lab-job.sh: `./run up` (the lab stack with one client: three machines on
two emulated CPUs), fib through the load balancer, `./run down`,
then looks for anything left. It has no network. Each phase's duration is printed (`-s`
shows it; `-rP` keeps it in the summary).
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.hostkinds.vmjob import ROOT, run_job

pytestmark = [pytest.mark.hostkinds, pytest.mark.e2e]  # ./run up inside the VM

JOB = ROOT / "templates" / "hostvm" / "lab-job.sh"
TIMEOUT = 60 * 60.0  # generous; see the README for what a run took here
PHASES = ("clone", "up", "fib", "down")
CHECKS = ("units-while-up", "no-lab-machines", "no-units", "no-machined-machines",
          "no-machine-netns", "no-lab-cgroups", "no-lab-mounts", "no-nspawn", "no-forward")


@pytest.mark.skipif(os.geteuid() != 0, reason="building the VM image needs root (loop devices)")
def test_readme_commands_on_a_systemd_cgroup_v2_host() -> None:
    run = run_job(JOB, TIMEOUT)
    result = run.result
    assert not result.timed_out, f"the VM did not power off within {TIMEOUT:.0f} s\n" + run.report()
    assert result.job_exit == 0, f"the VM's job exited {result.job_exit}\n" + run.report()
    facts = run.facts
    assert facts["systemd"][:2] == ["systemd", "257"], run.report()
    assert facts["cgroupfs"] == ["cgroup2fs"], run.report()
    assert facts["pid1"] == ["systemd"], run.report()
    assert " ".join(facts["lab-host"]).startswith("systemd is PID 1, cgroup v2 only"), run.report()
    assert sorted(run.phases) == sorted(PHASES) and run.failed_phases() == [], run.report()
    answers = re.findall(r"^hostvm-fib (.*)$", result.job_log, re.MULTILINE)
    assert answers, "no answer from the load balancer\n" + run.report()
    fib = json.loads(answers[-1])
    assert (fib["n"], fib["fib"]) == (10, 55), run.report()
    assert {name: run.checks.get(name, "missing") for name in CHECKS} == \
        dict.fromkeys(CHECKS, "ok"), run.report()
