"""The lab's own verbs on a systemd 257 + cgroup v2 host (the trixie VM, QEMU TCG, no network).

templates/hostvm/lab-verbs-job.sh makes two machines and takes them through up, a reboot
inside, stop, up again, down and clean-all, checking each machine's unit (its own delegated
service, known to machined) and, at the end, that nothing of the lab is left.
"""

from __future__ import annotations

import os

import pytest

from tests.hostkinds.vmjob import ROOT, run_job

pytestmark = pytest.mark.hostkinds

JOB = ROOT / "templates" / "hostvm" / "lab-verbs-job.sh"
TIMEOUT = 30 * 60.0  # generous: about 5 minutes here
PHASES = ("up-one", "reboot", "stop", "up-again", "up-second", "down", "clean-all")
CHECKS = ("in-its-unit", "in-its-unit-after-reboot", "stopped-unit-gone", "down-unit-gone",
          "no-units", "no-machined-machines", "no-machine-netns", "no-lab-cgroups",
          "no-lab-mounts", "no-nspawn")


@pytest.mark.skipif(os.geteuid() != 0, reason="building the VM image needs root (loop devices)")
def test_lab_verbs_on_a_systemd_cgroup_v2_host() -> None:
    run = run_job(JOB, TIMEOUT)
    result = run.result
    assert not result.timed_out, f"the VM did not power off within {TIMEOUT:.0f} s\n" + run.report()
    assert result.job_exit == 0, f"the VM's job exited {result.job_exit}\n" + run.report()
    assert run.facts["cgroupfs"] == ["cgroup2fs"], run.report()
    assert " ".join(run.facts["lab-host"]).startswith("systemd is PID 1, cgroup v2 only"), \
        run.report()
    assert sorted(run.phases) == sorted(PHASES) and run.failed_phases() == [], run.report()
    assert {name: run.checks.get(name, "missing") for name in CHECKS} == \
        dict.fromkeys(CHECKS, "ok"), run.report()
