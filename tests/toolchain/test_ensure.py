"""Idempotency, cache verification, source selection and the env/path/status output."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.toolchain.helpers import FAKE_BINARY, make_pins, sha256, tar_gz, tool_table, with_release, write
from toolchain import cli
from toolchain import ensure as ensure_mod
from toolchain.api import installed
from toolchain.ensure import check_cached, ensure, format_seconds, resolve_source
from toolchain.errors import ToolchainError
from toolchain.paths import Layout
from toolchain.pins import Pins
from toolchain.shellenv import binary_path, env_lines, status_lines


@pytest.fixture
def installed_pins(layout: Layout, tmp_path: Path) -> Pins:
    """Pins for a ``fake`` tool (file:// release) that is already installed."""
    data = tar_gz({"fake": FAKE_BINARY})
    artefact = write(tmp_path / "fake.tar.gz", data)
    table = with_release(tool_table(), url=artefact.as_uri(), sha256=sha256(data))
    table["on_path"] = True
    pins = make_pins(fake=table)
    [outcome] = ensure(layout, pins, [], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    return pins


def test_second_ensure_is_cached_and_installs_nothing(
    layout: Layout, installed_pins: Pins, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_install(*args: Any) -> None:
        raise AssertionError("a cached tool must not be reinstalled")

    monkeypatch.setattr(ensure_mod, "_install", no_install)
    out = io.StringIO()
    for source in ("release", "build"):
        [outcome] = ensure(layout, installed_pins, ["fake"], source, stream=out)
        assert outcome.action == "cached"
    assert "[fake 1.0.0] cached" in out.getvalue()


def test_tampered_binary_is_detected_and_reinstalled(layout: Layout, installed_pins: Pins) -> None:
    binary = layout.bin_dir("fake", "1.0.0") / "fake"
    binary.write_bytes(b"tampered!" + FAKE_BINARY[9:])
    problem = check_cached(layout, installed_pins.tool("fake"))
    assert problem == "bin/fake does not match its recorded sha256"
    out = io.StringIO()
    [outcome] = ensure(layout, installed_pins, ["fake"], "release", stream=out)
    assert outcome.action == "downloaded"
    assert "unusable" in out.getvalue()
    assert binary.read_bytes() == FAKE_BINARY


def test_missing_manifest_means_not_cached(layout: Layout, installed_pins: Pins) -> None:
    (layout.tool_dir("fake", "1.0.0") / "manifest.json").unlink()
    assert check_cached(layout, installed_pins.tool("fake")) == "no readable manifest.json"


def test_jobs_run_tools_in_parallel(layout: Layout, tmp_path: Path) -> None:
    tables = {}
    for name in ("one", "two", "three"):
        data = tar_gz({name: FAKE_BINARY})
        artefact = write(tmp_path / f"{name}.tar.gz", data)
        table = with_release(
            tool_table(main=name, env=""),
            url=artefact.as_uri(),
            sha256=sha256(data),
            members=[{"path": name, "name": name}],
        )
        table["build"]["binaries"][0]["name"] = name
        tables[name] = table
    outcomes = ensure(layout, make_pins(**tables), [], "release", jobs=3, stream=io.StringIO())
    assert [o.action for o in outcomes] == ["downloaded"] * 3


def test_resolve_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHICLUSTER_TOOLCHAIN_SOURCE", raising=False)
    assert resolve_source(None) == "release"
    monkeypatch.setenv("HASHICLUSTER_TOOLCHAIN_SOURCE", "build")
    assert resolve_source(None) == "build"
    assert resolve_source("release") == "release"
    monkeypatch.setenv("HASHICLUSTER_TOOLCHAIN_SOURCE", "magic")
    with pytest.raises(ToolchainError, match="unknown source 'magic'"):
        resolve_source(None)


def test_env_lines(layout: Layout, installed_pins: Pins) -> None:
    lines = env_lines(layout, installed_pins)
    bin_dir = layout.bin_dir("fake", "1.0.0")
    assert lines[0] == f'export PATH={bin_dir}:"$PATH"'
    assert f"export HASHICLUSTER_BIN_FAKE={bin_dir / 'fake'}" in lines
    assert "export PULUMI_SKIP_UPDATE_CHECK=true" in lines
    assert "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true" in lines
    assert f"export PULUMI_HOME={layout.cache / 'pulumi-home'}" in lines


def test_env_lines_skip_missing_tools(layout: Layout) -> None:
    lines = env_lines(layout, make_pins())
    assert lines[0] == "# fake 1.0.0 is not installed: python3 -m toolchain ensure fake"
    assert not any(line.startswith("export PATH") for line in lines)


def test_path_status_and_api(layout: Layout, installed_pins: Pins) -> None:
    expected = layout.bin_dir("fake", "1.0.0") / "fake"
    assert binary_path(layout, installed_pins, "fake") == str(expected)
    status = "\n".join(status_lines(layout, installed_pins))
    assert "fake" in status and "release" in status
    found = installed("fake", layout=layout, pins=installed_pins)
    assert found.path == expected and found.sha256 == sha256(FAKE_BINARY)
    with pytest.raises(ToolchainError, match="not installed"):
        binary_path(layout, make_pins(fake=tool_table(version="2.0.0")), "fake")


def test_cli_exit_status_and_messages(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["path", "no-such-tool"]) == 1
    assert "unknown tool 'no-such-tool'" in capsys.readouterr().err
    assert cli.main(["status"]) == 0
    assert str(layout.root) in capsys.readouterr().out


def test_format_seconds() -> None:
    assert format_seconds(4.25) == "4.2s"
    assert format_seconds(185) == "3m05s"
