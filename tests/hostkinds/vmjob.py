"""Run one job script of templates/hostvm/ in the trixie VM and read what it reported.

The job prints `hostvm-fact NAME VALUE`, `hostvm-phase NAME SECONDS RC` and
`hostvm-check NAME ok|FAILED` lines on the VM's second serial port; the last run's logs of
each job stay in <cache>/hostvm/last-run-<job>/ until that job runs again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hostvm import image, recipe, share, vm
from vagrantbox.host import BOOT_TOOLS, BUILD_TOOLS, cache_root, install_packages, missing_packages

ROOT = Path(__file__).resolve().parents[2]


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


def run_dir(job: Path) -> Path:
    """An empty directory for this job's logs, kept until the job runs again."""
    path = cache_root() / "hostvm" / f"last-run-{job.stem}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass
class JobRun:
    """One run of a job: the VM's result, where its logs are, and how long each part took."""

    result: vm.RunResult
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def facts(self) -> dict[str, list[str]]:
        return lines(self.result.job_log, "fact")

    @property
    def phases(self) -> dict[str, list[str]]:
        return lines(self.result.job_log, "phase")

    @property
    def checks(self) -> dict[str, str]:
        return {name: words[0] for name, words in lines(self.result.job_log, "check").items()}

    def failed_phases(self) -> list[str]:
        """Phases that ended with a non-zero exit code."""
        return [name for name, words in self.phases.items() if words[1:2] != ["0"]]

    def report(self) -> str:
        """What to read when the run failed: the job's log and the end of the VM's console."""
        return (f"--- job log (VM serial port 2; all of it in {self.logs / 'job.log'})\n"
                f"{self.result.job_log[-20000:]}\n"
                f"--- console (VM serial port 1; all of it in {self.logs / 'console.log'}), "
                f"the end\n{self.result.console[-4000:]}")

    def print_timings(self) -> None:
        print("\nphase durations (s):")
        for name, seconds in self.timings.items():
            print(f"  {name:<32} {seconds:8.1f}")


def run_job(job: Path, timeout: float) -> JobRun:
    """Build (or reuse) the image, make the share disk with JOB, run the VM; print timings."""
    install_packages(missing_packages({**BUILD_TOOLS, **BOOT_TOOLS}))
    timings: dict[str, float] = {}
    started = time.monotonic()
    disk = image.ensure(recipe.VmSpec())
    timings["image (0 when cached)"] = time.monotonic() - started
    logs = run_dir(job)
    started = time.monotonic()
    share_disk = share.build(ROOT, lab_base(), job.read_text(), logs)
    timings["share disk"] = time.monotonic() - started
    try:
        result = vm.run(disk, share_disk, logs, timeout)
    finally:
        share_disk.unlink()
    run = JobRun(result, logs, timings)
    timings["VM, boot to power-off"] = result.seconds
    if "booted-in" in run.facts:
        timings["VM boot (kernel to the job)"] = float(run.facts["booted-in"][0])
    for name, words in run.phases.items():
        timings[f"in the VM: {name}"] = float(words[0])
    run.print_timings()
    return run
