"""Pulumi plugins linked from the toolchain into a Pulumi home's plugin cache."""

from __future__ import annotations

import io
import os
from pathlib import Path

from tests.toolchain.helpers import FAKE_BINARY, make_pins, sha256, tar_gz, tool_table, write
from toolchain.ensure import ensure
from toolchain.paths import Layout
from toolchain.plugins import install_plugin, link_plugins, plugin_dir_name

PLUGIN = "pulumi-resource-fake"


def test_plugin_directory_names_follow_pulumis_cache_layout() -> None:
    assert plugin_dir_name("pulumi-resource-command", "1.2.1") == "resource-command-v1.2.1"
    assert plugin_dir_name("pulumi-language-python", "3.274.1") == "language-python-v3.274.1"
    assert plugin_dir_name("pulumi", "3.274.1") is None
    assert plugin_dir_name("nomad", "1.6.3") is None


def test_installed_plugin_is_linked_once_into_the_home(layout: Layout, tmp_path: Path) -> None:
    data = tar_gz({PLUGIN: FAKE_BINARY})
    write(tmp_path / "www" / "1.0.0" / "p.tar.gz", data)
    table = tool_table(main=PLUGIN)
    table["build"]["binaries"][0]["name"] = PLUGIN
    table["release"].update(url=(tmp_path / "www").as_uri() + "/{version}/p.tar.gz", sha256=sha256(data),
                            members=[{"path": PLUGIN, "name": PLUGIN}])
    pins = make_pins(**{PLUGIN: table})
    home = tmp_path / "pulumi-home"
    assert link_plugins(layout, pins, home) == []  # nothing installed yet: nothing linked
    ensure(layout, pins, [], "release", stream=io.StringIO())
    [link] = link_plugins(layout, pins, home)
    assert link == home / "plugins" / "resource-fake-v1.0.0" / PLUGIN
    assert os.readlink(link) == str(layout.bin_dir(PLUGIN, "1.0.0") / PLUGIN)
    assert link.read_bytes() == FAKE_BINARY
    assert link_plugins(layout, pins, home) == [link]  # again: the same link, left as it is


def test_plugin_is_placed_under_pulumis_lock_and_partial_marker(tmp_path: Path) -> None:
    target = write(tmp_path / "bin" / PLUGIN, FAKE_BINARY)
    plugins = tmp_path / "home" / "plugins"
    link = install_plugin(plugins, "resource-fake-v1.0.0", PLUGIN, target)
    assert link == plugins / "resource-fake-v1.0.0" / PLUGIN and link.read_bytes() == FAKE_BINARY
    assert (plugins / "resource-fake-v1.0.0.lock").is_file()  # kept, as Pulumi keeps it
    assert not (plugins / "resource-fake-v1.0.0.partial").exists()


def test_an_interrupted_install_is_discarded_and_redone(tmp_path: Path) -> None:
    target = write(tmp_path / "bin" / PLUGIN, FAKE_BINARY)
    plugins = tmp_path / "plugins"
    link = install_plugin(plugins, "resource-fake-v1.0.0", PLUGIN, target)
    # What a crash half-way through an install leaves: the marker, and a stray file.
    (plugins / "resource-fake-v1.0.0.partial").touch()
    write(plugins / "resource-fake-v1.0.0" / "half-written", b"x")
    assert install_plugin(plugins, "resource-fake-v1.0.0", PLUGIN, target) == link
    assert sorted(p.name for p in (plugins / "resource-fake-v1.0.0").iterdir()) == [PLUGIN]
    assert not (plugins / "resource-fake-v1.0.0.partial").exists()


def test_another_copy_of_the_plugin_is_replaced_by_the_toolchains(tmp_path: Path) -> None:
    target = write(tmp_path / "bin" / PLUGIN, FAKE_BINARY)
    plugins = tmp_path / "plugins"
    write(plugins / "resource-fake-v1.0.0" / PLUGIN, b"someone else's build")
    link = install_plugin(plugins, "resource-fake-v1.0.0", PLUGIN, target)
    assert os.readlink(link) == str(target)
