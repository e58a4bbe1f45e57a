"""Peak memory of a command's process tree (bench/memory.py), on real processes: a parent that
starts a child which holds a known amount of memory until told to stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import memory
from bench.workspace import run_command
from tests.waiting import wait_until

# A child holding 64 MiB (touched, so resident) until its stdin closes; its parent waits on it.
CHILD = "import sys; block = bytearray(64 << 20); block[::4096] = b'x' * len(block[::4096]); " \
        "print('ready', flush=True); sys.stdin.read()"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"


def test_the_tree_is_the_process_and_its_descendants() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        pids = memory.tree(parent.pid)
        assert pids[0] == parent.pid and len(pids) == 2
        child = pids[1]
        assert Path(f"/proc/{child}/cmdline").read_bytes().startswith(sys.executable.encode())
        assert memory.rss_kib(child)[1] >= 64 * 1024
    finally:
        parent.communicate("", timeout=60)
    assert memory.rss_kib(parent.pid) == ("", 0)  # gone: nothing to count


def test_a_watch_sees_the_childs_memory_in_the_peak() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    with memory.Watch(parent.pid, interval=0.05) as watch:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        wait_until("the watch saw the child's 64 MiB", lambda: watch.peaks.tree_mib >= 64, timeout=60)
        parent.communicate("", timeout=60)
    peaks = watch.peaks.as_dict()
    assert peaks["controller_peak_mib"] >= 64  # type: ignore[operator]
    assert peaks["host_peak_mib"] >= peaks["controller_peak_mib"]  # type: ignore[operator]
    assert max(watch.peaks.by_name_mib.values()) >= 64


def test_peaks_keep_the_largest_sum_per_name() -> None:
    peaks = memory.Peaks()
    peaks.see([("pulumi", 1024), ("python3", 2048), ("python3", 2048)], host_kib=10 * 1024)
    peaks.see([("pulumi", 4096)], host_kib=5 * 1024)
    assert (peaks.tree_mib, peaks.host_mib, peaks.looks) == (5.0, 10.0, 2)
    assert peaks.by_name_mib == {"pulumi": 4.0, "python3": 4.0}


def test_host_memory_in_use_is_total_minus_available(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    300 kB\n")
    assert memory.host_used_kib(tmp_path) == 700


def test_every_command_the_bench_runs_reports_its_peaks(tmp_path: Path) -> None:
    done = run_command([sys.executable, "-c", PARENT], tmp_path, {"PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0 and done.stdout == "ready\n"
    assert done.memory.looks >= 1 and done.memory.host_mib > 0
