"""bench/facts.py: the machine's facts from /proc text."""

from __future__ import annotations

from bench.facts import kvm_usable, mem_total_kib

MEMINFO = "MemTotal:       24684084 kB\nMemFree:         1234 kB\n"
CPUINFO = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse\n\nprocessor\t: 1\nflags\t\t: fpu\n"


def test_mem_total_in_kib() -> None:
    assert mem_total_kib(MEMINFO) == 24684084
    assert mem_total_kib("MemFree: 1 kB\n") is None
    assert mem_total_kib("MemTotal: lots\n") is None


def test_kvm_needs_the_cpu_flag_and_the_device() -> None:
    assert kvm_usable(CPUINFO, dev_kvm_exists=True)
    assert not kvm_usable(CPUINFO, dev_kvm_exists=False)
    assert not kvm_usable(CPUINFO.replace(" vmx", ""), dev_kvm_exists=True)
    assert kvm_usable("flags : svm\n", dev_kvm_exists=True)
