"""Output of the ``env``, ``path`` and ``status`` commands."""

from __future__ import annotations

import shlex

from toolchain.errors import ToolchainError
from toolchain.manifest import Manifest, read_manifest
from toolchain.paths import Layout
from toolchain.pins import ARCHITECTURES, DEFAULT_ARCH, Pins, ToolPin, linux_platform

PULUMI_SETTINGS = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
}


def _installed_version_dir(layout: Layout, pins: Pins, tool: str) -> bool:
    """True if the pinned version of ``tool`` has a manifest."""
    pin = pins.tool(tool)
    return read_manifest(layout.tool_dir(pin.name, pin.version)) is not None


def env_lines(layout: Layout, pins: Pins) -> list[str]:
    """Shell lines exporting PATH, the Pulumi settings and the cluster binaries' paths.

    Tools that are not installed are skipped with a comment saying how to install them.
    """
    lines: list[str] = []
    path_dirs: list[str] = []
    for pin in pins.tools.values():
        if not _installed_version_dir(layout, pins, pin.name):
            lines.append(
                f"# {pin.name} {pin.version} is not installed: python3 -m toolchain ensure {pin.name}"
            )
            continue
        if pin.on_path:
            path_dirs.append(str(layout.bin_dir(pin.name, pin.version)))
        if pin.env:
            binary = layout.bin_dir(pin.name, pin.version) / pin.main
            lines.append(f"export {pin.env}={shlex.quote(str(binary))}")
    if path_dirs:
        joined = ":".join(shlex.quote(d) for d in path_dirs)
        lines.insert(0, f'export PATH={joined}:"$PATH"')
    for key, value in PULUMI_SETTINGS.items():
        lines.append(f"export {key}={value}")
    lines.append(f"export PULUMI_HOME={shlex.quote(str(layout.pulumi_home))}")
    return lines


def binary_path(layout: Layout, pins: Pins, tool: str, arch: str = DEFAULT_ARCH) -> str:
    """Path of a tool's main binary (``TOOL`` or ``TOOL@VERSION``) for ``arch``; raises
    ToolchainError when it is not installed."""
    pin = pins.select(tool).for_arch(arch)
    tool_dir = layout.tool_dir(pin.name, pin.version, pin.arch)
    manifest = read_manifest(tool_dir)
    entry = manifest.file(pin.main) if manifest and manifest.arch == pin.arch else None
    if entry is None:
        platform = "" if pin.arch == DEFAULT_ARCH else f" ({pin.platform})"
        raise ToolchainError(
            f"{pin.name} {pin.version}{platform} is not installed; run: {pin.ensure_command}"
        )
    return str(tool_dir / entry.path)


def status_lines(layout: Layout, pins: Pins) -> list[str]:
    """A human-readable table of every pinned version of every tool and what is cached.

    Default versions are named ``TOOL``, extra ones ``TOOL@VERSION`` (as `ensure` takes them).
    Another architecture's installs follow, as ``TOOL --arch ARCH`` (only those installed).
    """
    lines = [f"cache: {layout.root}"]
    for pin in pins.all_pins():
        manifest = read_manifest(layout.tool_dir(pin.name, pin.version))
        if manifest is None:
            build = "build unavailable" if pin.build.unavailable else "buildable"
            sha = release_check(pin)
            lines.append(f"{pin.spec:<24} {pin.version:<10} missing ({build}; release {sha})")
            continue
        lines.append(_installed_line(pin.spec, pin.version, manifest))
    for arch in ARCHITECTURES[1:]:
        for pin in pins.all_pins():
            if arch not in pin.architectures:
                continue
            manifest = read_manifest(layout.tool_dir(pin.name, pin.version, arch))
            if manifest is not None:
                lines.append(_installed_line(f"{pin.spec} --arch {arch}", pin.version, manifest))
    others = _other_versions(layout, pins)
    if others:
        lines.append("other cached versions: " + ", ".join(others))
    return lines


def _installed_line(label: str, version: str, manifest: Manifest) -> str:
    """One `status` line for an installed version."""
    size = sum(f.size for f in manifest.files) / 1e6
    return (
        f"{label:<24} {version:<10} {manifest.source:<8} {manifest.installed_at} "
        f"{size:7.1f} MB  {', '.join(f.path for f in manifest.files)}"
    )


def release_check(pin: ToolPin) -> str:
    """How the release artefact is verified, for `status`."""
    if pin.release.sha256_pinned:
        return "sha256 pinned"
    return "sha256 from the vendor's checksum list" if pin.release.checksums_url else "sha256 TODO"


def _other_versions(layout: Layout, pins: Pins) -> list[str]:
    """Cached version dirs (``tool/version``, ``tool/linux_arm64/version``) that are none of
    the tool's pinned versions."""
    platforms = {linux_platform(arch) for arch in ARCHITECTURES[1:]}
    found = []
    for pin in pins.tools.values():
        pinned = pins.versions(pin.name)
        for arch in ARCHITECTURES:
            arch_root = layout.arch_root(pin.name, arch)
            if not arch_root.is_dir():
                continue
            for child in sorted(arch_root.iterdir()):
                if child.is_dir() and child.name not in platforms and not child.name.startswith(".") \
                        and child.name not in pinned:
                    found.append(str(child.relative_to(layout.root)))
    return found
