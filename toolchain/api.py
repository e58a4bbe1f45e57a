"""Look up installed tools from other code (e.g. the Pulumi program uploading binaries).

Example::

    from toolchain.api import installed
    consul = installed("consul")
    consul.path, consul.sha256
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import ToolchainError
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins, load_pins


@dataclass(frozen=True)
class InstalledBinary:
    """One installed binary of a pinned tool, with the sha256 its manifest recorded."""

    tool: str
    version: str
    name: str
    path: Path
    sha256: str
    size: int


def installed(
    tool: str, binary: str | None = None, layout: Layout | None = None, pins: Pins | None = None
) -> InstalledBinary:
    """Return a pinned tool's installed binary (its main one by default).

    Reads the manifest only (fast); `python3 -m toolchain ensure` verifies the files.
    Raises ToolchainError when the pinned version is not installed.
    """
    layout = layout or Layout.from_env()
    pin = (pins or load_pins()).tool(tool)
    name = binary or pin.main
    tool_dir = layout.tool_dir(pin.name, pin.version)
    manifest = read_manifest(tool_dir)
    entry = manifest.file(name) if manifest else None
    if entry is None:
        raise ToolchainError(
            f"{pin.name} {pin.version} ({name}) is not installed under {tool_dir}; "
            f"run: python3 -m toolchain ensure {pin.name}"
        )
    return InstalledBinary(
        tool=pin.name,
        version=pin.version,
        name=name,
        path=tool_dir / entry.path,
        sha256=entry.sha256,
        size=entry.size,
    )
