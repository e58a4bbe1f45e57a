"""Look up installed tools from other code (e.g. the Pulumi program uploading binaries).

Example::

    from toolchain.api import installed, installed_versions
    consul = installed("consul")                  # the default version
    nomad = installed("nomad", version="1.6.2")   # an extra version from versions.toml
    consul.path, consul.sha256
    installed("consul", arch="arm64")             # the linux_arm64 binary (ensure --arch arm64)
    installed_versions("nomad")                   # ("1.6.3", "1.6.2") when both are installed
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import ToolchainError
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import DEFAULT_ARCH, Pins, load_pins


@dataclass(frozen=True)
class InstalledBinary:
    """One installed binary of a pinned tool, with the sha256 its manifest recorded."""

    tool: str
    version: str
    name: str
    path: Path
    sha256: str
    size: int
    arch: str = DEFAULT_ARCH


def installed(
    tool: str,
    version: str | None = None,
    *,
    binary: str | None = None,
    layout: Layout | None = None,
    pins: Pins | None = None,
    arch: str = DEFAULT_ARCH,
) -> InstalledBinary:
    """Return a pinned tool's installed binary (its main one by default) for ``arch``.

    ``version`` None is the tool's default version; another must be one of its extra
    versions in versions.toml (PinError, naming the pinned versions, otherwise). ``arch``
    other than amd64 needs a tool pinned for it (PinError otherwise, e.g. for pulumi).
    Reads the manifest only (fast); `python3 -m toolchain ensure` verifies the files.
    Raises ToolchainError when that version is not installed for that architecture.
    """
    layout = layout or Layout.from_env()
    pin = (pins or load_pins()).tool(tool, version).for_arch(arch)
    name = binary or pin.main
    tool_dir = layout.tool_dir(pin.name, pin.version, pin.arch)
    manifest = read_manifest(tool_dir)
    entry = manifest.file(name) if manifest and manifest.arch == pin.arch else None
    if entry is None:
        what = name if pin.arch == DEFAULT_ARCH else f"{name}, {pin.platform}"
        raise ToolchainError(
            f"{pin.name} {pin.version} ({what}) is not installed under {tool_dir}; run: {pin.ensure_command}"
        )
    return InstalledBinary(
        tool=pin.name,
        version=pin.version,
        name=name,
        path=tool_dir / entry.path,
        sha256=entry.sha256,
        size=entry.size,
        arch=pin.arch,
    )


def installed_versions(
    tool: str, *, layout: Layout | None = None, pins: Pins | None = None, arch: str = DEFAULT_ARCH
) -> tuple[str, ...]:
    """The pinned versions of a tool whose main binary is installed for ``arch``, the default
    first.

    Like :func:`installed`, reads the manifests only.
    """
    layout = layout or Layout.from_env()
    pins = pins or load_pins()
    found = []
    for version in pins.versions(tool):
        pin = pins.tool(tool, version).for_arch(arch)
        manifest = read_manifest(layout.tool_dir(pin.name, pin.version, pin.arch))
        if manifest is not None and manifest.arch == pin.arch and manifest.file(pin.main) is not None:
            found.append(version)
    return tuple(found)
