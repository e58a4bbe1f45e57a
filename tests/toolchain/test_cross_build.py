"""A real cross-build: consul-template (the smallest machine tool) built from source for
linux_arm64 through the module proxy, then run under qemu-user.

The build goes into a private cache, so `ensure --source build --arch arm64` really runs each
time (Go's own module and build caches keep a repeat quick). `./run test` installs Debian's
qemu-user-static, whose qemu-aarch64-static runs the binary on this amd64 host.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from toolchain.api import installed
from toolchain.ensure import ensure
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import PINS_FILE, load_pins

pytestmark = pytest.mark.long

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_AARCH64 = 183
TOOL = "consul-template"


def elf_header(path: Path) -> tuple[int, int, int]:
    """(EI_CLASS, EI_DATA, e_machine) of an ELF file."""
    with path.open("rb") as fh:
        header = fh.read(20)
    assert header[:4] == ELF_MAGIC, f"{path} is not an ELF file: {header[:4]!r}"
    machine = header[18:20]
    return header[4], header[5], int.from_bytes(machine, "little" if header[5] == ELFDATA2LSB else "big")


def test_consul_template_cross_built_for_arm64_runs_under_qemu(layout: Layout) -> None:
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        pytest.skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static; "
                    "`./run test` installs it)")
    pins = load_pins(PINS_FILE)
    pin = pins.tool(TOOL)
    out = io.StringIO()
    [outcome] = ensure(layout, pins, [TOOL], "build", stream=out, arch="arm64")
    assert outcome.action == "built", f"{outcome.error}\n{out.getvalue()}"

    binary = installed(TOOL, layout=layout, pins=pins, arch="arm64")
    assert binary.path == layout.bin_dir(TOOL, pin.version, "arm64") / TOOL
    manifest = read_manifest(layout.tool_dir(TOOL, pin.version, "arm64"))
    assert manifest is not None
    assert (manifest.arch, manifest.source) == ("arm64", "build")
    assert (manifest.details["goos_goarch"], manifest.details["cgo"]) == ("linux/arm64", False)
    assert not layout.tool_dir(TOOL, pin.version).exists(), "nothing was installed for amd64"

    assert elf_header(binary.path) == (ELFCLASS64, ELFDATA2LSB, EM_AARCH64)

    proc = subprocess.run([qemu, str(binary.path), "-version"], capture_output=True, text=True,
                          timeout=120, check=False)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed
    match = re.search(r"^consul-template v(\S+)", printed, re.M)
    assert match is not None, printed
    assert match.group(1) == pin.version
