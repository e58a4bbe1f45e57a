"""Pulumi plugins from the toolchain, installed into a Pulumi home's plugin cache.

A tool named `pulumi-resource-NAME` is a resource plugin: Pulumi looks for it as
`$PULUMI_HOME/plugins/resource-NAME-vVERSION/pulumi-resource-NAME`. Putting it there (instead
of on PATH) lets Pulumi use it as an installed plugin, without downloading it and without the
"using ... from $PATH" warning on every run. The binary in that directory is a link to the
toolchain's verified copy, so the toolchain's manifest covers it.

The directory is written the way `pulumi plugin install` writes one, so the two never see
each other's half-done work: `resource-NAME-vVERSION.lock` beside it is held (flock) while
it is written, and `resource-NAME-vVERSION.partial` marks it incomplete from before the first
change until after the last. Pulumi ignores a plugin directory whose `.partial` marker
exists, and the next install discards it. The lock file is never deleted.

Language hosts are not plugins of the cache: Pulumi runs the ones it bundles (such as
`pulumi-language-python`) from beside the `pulumi` binary, where the toolchain installs them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from toolchain.locks import exclusive_lock
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins

_PLUGIN = re.compile(r"^pulumi-(resource|language|analyzer|converter|tool)-([a-z0-9-]+)$")
LOCK_SUFFIX = ".lock"
PARTIAL_SUFFIX = ".partial"


def plugin_dir_name(tool: str, version: str) -> str | None:
    """`resource-command-v1.2.1` for pulumi-resource-command 1.2.1; None for other tools."""
    match = _PLUGIN.match(tool)
    return f"{match.group(1)}-{match.group(2)}-v{version}" if match else None


def link_plugins(layout: Layout, pins: Pins, pulumi_home: Path | None = None) -> list[Path]:
    """Install every installed default-version plugin into PULUMI_HOME's plugin cache (the
    toolchain's own Pulumi home by default); return the plugin binaries placed or checked."""
    home = pulumi_home or layout.pulumi_home
    placed = []
    for pin in pins.tools.values():
        name = plugin_dir_name(pin.name, pin.version)
        tool_dir = layout.tool_dir(pin.name, pin.version)
        manifest = read_manifest(tool_dir)
        entry = manifest.file(pin.main) if manifest else None
        if name is None or entry is None:
            continue
        placed.append(install_plugin(home / "plugins", name, pin.main, tool_dir / entry.path))
    return placed


def install_plugin(plugins: Path, dir_name: str, binary: str, target: Path) -> Path:
    """Make ``plugins/dir_name/binary`` a link to ``target``, under Pulumi's install protocol.

    A complete directory that already links there is left alone; anything else there (an
    interrupted install, another copy of the plugin) is replaced.
    """
    plugin_dir = plugins / dir_name
    link = plugin_dir / binary
    partial = plugins / (dir_name + PARTIAL_SUFFIX)
    plugins.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(plugins / (dir_name + LOCK_SUFFIX)):
        if not partial.exists() and links_to(link, target):
            return link
        mark_partial(partial)
        if plugin_dir.is_symlink() or plugin_dir.is_file():
            plugin_dir.unlink()
        shutil.rmtree(plugin_dir, ignore_errors=True)
        plugin_dir.mkdir()
        link.symlink_to(target)
        partial.unlink()
    return link


def links_to(link: Path, target: Path) -> bool:
    """True when ``link`` is a symlink whose text is ``target``."""
    return link.is_symlink() and os.readlink(link) == str(target)


def mark_partial(path: Path) -> None:
    """Create the `.partial` marker and flush it and its directory entry to disk, so that a
    crash cannot keep the directory's new content while losing the marker."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
