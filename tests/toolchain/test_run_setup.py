"""`./run setup --source release|build`: the toolchain's source for that run.

The script runs from a copy in a temporary directory, with a stand-in Python that records how
it is called and stand-ins for the host tools `setup` looks for, so nothing is installed and
the repository's venv, the toolchain cache and the lab are left alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..runscript import needs_root, run_script

pytestmark = needs_root


def run_setup(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `./run setup ARGS` on the copy; return the process and the recorded Python calls."""
    return run_script(tmp_path, "setup", *args)


@pytest.mark.parametrize("source", ["release", "build"])
def test_setup_source_sets_the_toolchain_source_for_the_run(tmp_path: Path, source: str) -> None:
    proc, calls = run_setup(tmp_path, "--source", source)
    assert proc.returncode == 0, proc.stderr
    assert f"source={source} args=-m toolchain ensure" in calls
    assert f"source={source} args=-m lab base" in calls


def test_setup_without_source_leaves_the_default(tmp_path: Path) -> None:
    proc, calls = run_setup(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "source=unset args=-m toolchain ensure" in calls


@pytest.mark.parametrize("args", [["--source"], ["--source", "magic"], ["--bogus"],
                                  ["--source", "release", "extra"]])
def test_setup_refuses_other_arguments_before_doing_anything(tmp_path: Path, args: list[str]) -> None:
    proc, calls = run_setup(tmp_path, *args)
    assert proc.returncode == 1
    assert "usage: ./run setup [--source release|build]" in proc.stderr
    assert calls == []
