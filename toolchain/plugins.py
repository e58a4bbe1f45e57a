"""Pulumi plugins from the toolchain, linked into a Pulumi home's plugin cache.

A tool named `pulumi-resource-NAME` is a resource plugin: Pulumi looks for it as
`$PULUMI_HOME/plugins/resource-NAME-vVERSION/pulumi-resource-NAME`. Linking it there (instead
of putting it on PATH) lets Pulumi use it as an installed plugin, without downloading it and
without the "using ... from $PATH" warning on every run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins

_PLUGIN = re.compile(r"^pulumi-(resource|language|analyzer|converter|tool)-([a-z0-9-]+)$")


def plugin_dir_name(tool: str, version: str) -> str | None:
    """`resource-command-v1.2.1` for pulumi-resource-command 1.2.1; None for other tools."""
    match = _PLUGIN.match(tool)
    return f"{match.group(1)}-{match.group(2)}-v{version}" if match else None


def link_plugins(layout: Layout, pins: Pins, pulumi_home: Path | None = None) -> list[Path]:
    """Link every installed default-version plugin into PULUMI_HOME's plugin cache (the
    toolchain's own Pulumi home by default); return the links made or checked."""
    home = pulumi_home or layout.pulumi_home
    links = []
    for pin in pins.tools.values():
        name = plugin_dir_name(pin.name, pin.version)
        tool_dir = layout.tool_dir(pin.name, pin.version)
        manifest = read_manifest(tool_dir)
        entry = manifest.file(pin.main) if manifest else None
        if name is None or entry is None:
            continue
        target = tool_dir / entry.path
        link = home / "plugins" / name / pin.main
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        links.append(link)
    return links
