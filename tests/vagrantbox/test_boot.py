"""Build (or reuse) the box and boot it for real under QEMU TCG with no network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vagrantbox import spec
from vagrantbox.boot import boot, extract_disk
from vagrantbox.build import build
from vagrantbox.host import default_out_dir

pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.geteuid() != 0, reason="building a box needs root")
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86")
def test_box_boots_to_login_prompt(tmp_path: Path) -> None:
    box_file = build(spec.BoxSpec(), default_out_dir())
    result = boot(extract_disk(box_file, tmp_path), timeout=900.0)  # a hang guard, not a limit
    assert result.login_prompt, result.console[-3000:]
    assert "Welcome to Debian" in result.console or "Reached target" in result.console
