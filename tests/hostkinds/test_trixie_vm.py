"""The lab end to end on a systemd 257 + cgroup v2 host: a Debian trixie VM under QEMU TCG.

The VM (hostvm/) boots from a disk image the project builds (cached by its recipe), gets
this checkout, the host's toolchain, the lab base and the Python wheels on a share disk, and
runs templates/hostvm/lab-job.sh: `./run up`, fib through the load balancer, `./run down`,
then looks for anything left. It has no network. Each phase's duration is printed (`-s`
shows it; `-rP` keeps it in the summary).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostvm import image, recipe, share, vm
from vagrantbox.host import BOOT_TOOLS, BUILD_TOOLS, cache_root, install_packages, missing_packages

pytestmark = pytest.mark.hostkinds

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "templates" / "hostvm" / "lab-job.sh"
TIMEOUT = 60 * 60.0  # generous; see the README for what a run took here
PHASES = ("clone", "up", "fib", "down")
CHECKS = ("units-while-up", "no-lab-machines", "no-units", "no-machined-machines",
          "no-machine-netns", "no-lab-cgroups", "no-lab-mounts", "no-nspawn", "no-forward")


def lines(log: str, kind: str) -> dict[str, list[str]]:
    """`hostvm-KIND NAME REST...` lines of the job log, by NAME."""
    found = {}
    for match in re.finditer(rf"^hostvm-{kind} (\S+) ?(.*)$", log, re.MULTILINE):
        found[match.group(1)] = match.group(2).split()
    return found


def lab_base() -> Path:
    """The host's cached lab base (built first if missing), as `python3 -m lab base` says."""
    out = subprocess.run([sys.executable, "-m", "lab", "base"], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=900).stdout
    return Path(out.strip())


def run_dir() -> Path:
    """The last run's logs stay here (job.log, console.log) until the next run."""
    path = cache_root() / "hostvm" / "last-run"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def report(result: vm.RunResult, logs: Path) -> str:
    """What to read when the run failed: the job's log and the end of the VM's console."""
    return (f"--- job log (VM serial port 2; all of it in {logs / 'job.log'})\n"
            f"{result.job_log[-20000:]}\n"
            f"--- console (VM serial port 1; all of it in {logs / 'console.log'}), the end\n"
            f"{result.console[-4000:]}")


@pytest.mark.skipif(os.geteuid() != 0, reason="building the VM image needs root (loop devices)")
def test_readme_commands_on_a_systemd_cgroup_v2_host() -> None:
    install_packages(missing_packages({**BUILD_TOOLS, **BOOT_TOOLS}))
    timings: dict[str, float] = {}

    started = time.monotonic()
    disk = image.ensure(recipe.VmSpec())
    timings["image (0 when cached)"] = time.monotonic() - started

    logs = run_dir()
    started = time.monotonic()
    share_disk = share.build(ROOT, lab_base(), JOB.read_text(), logs)
    timings["share disk"] = time.monotonic() - started

    try:
        result = vm.run(disk, share_disk, logs, TIMEOUT)
    finally:
        share_disk.unlink()
    timings["VM, boot to power-off"] = result.seconds
    phases = lines(result.job_log, "phase")
    booted = lines(result.job_log, "fact").get("booted-in")
    if booted:
        timings["VM boot (kernel to the job)"] = float(booted[0])
    for name in PHASES:
        if name in phases:
            timings[f"in the VM: {name}"] = float(phases[name][0])
    print("\nphase durations (s):")
    for name, seconds in timings.items():
        print(f"  {name:<28} {seconds:8.1f}")

    assert not result.timed_out, f"the VM did not power off within {TIMEOUT:.0f} s\n" + report(result, logs)
    assert result.job_exit == 0, f"the VM's job exited {result.job_exit}\n" + report(result, logs)
    facts = lines(result.job_log, "fact")
    assert facts["systemd"][:2] == ["systemd", "257"], report(result, logs)
    assert facts["cgroupfs"] == ["cgroup2fs"], report(result, logs)
    assert facts["pid1"] == ["systemd"], report(result, logs)
    assert " ".join(facts["lab-host"]).startswith("systemd is PID 1, cgroup v2 only"), report(result, logs)
    assert [name for name in PHASES if phases.get(name, ["", "?"])[1] != "0"] == [], report(result, logs)
    answers = re.findall(r"^hostvm-fib (.*)$", result.job_log, re.MULTILINE)
    assert answers, "no answer from the load balancer\n" + report(result, logs)
    fib = json.loads(answers[-1])
    assert (fib["n"], fib["fib"]) == (10, 55), report(result, logs)
    checks = lines(result.job_log, "check")
    assert {name: checks.get(name, ["missing"])[0] for name in CHECKS} == \
        dict.fromkeys(CHECKS, "ok"), report(result, logs)
