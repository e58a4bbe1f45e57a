"""templates/images/base-files.py on this host's own Debian: the files of fib's base image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "templates" / "images" / "base-files.py"


def test_lists_python3_and_its_libraries_without_documentation() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query is missing: these tests run on Debian, as the machines do")
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    paths = done.stdout.splitlines()
    python = os.path.realpath("/usr/bin/python3").lstrip("/")
    assert python in paths, python
    assert any(p.endswith("/json/__init__.py") for p in paths), "the standard library is missing"
    assert any("/libc.so" in p for p in paths), "python3's libc is missing"
    assert not [p for p in paths if p.startswith("usr/share/doc/")]
    assert len(paths) == len(set(paths))
    # The merged-/usr links come first, then files as the machine has them.
    links = [p for p in paths if os.path.islink(f"/{p}") and p in ("bin", "sbin", "lib", "lib64")]
    assert paths[:len(links)] == links
    assert all(os.path.lexists(f"/{p}") for p in paths)
