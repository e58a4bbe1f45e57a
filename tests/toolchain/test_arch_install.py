"""``--arch arm64``: another architecture's release or cross-build, cached apart from amd64's."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.toolchain.conftest import Mirror, calls
from tests.toolchain.helpers import make_pins, sha256, tar_gz, tool_table
from toolchain import cli, gobuild
from toolchain.api import installed, installed_versions
from toolchain.ensure import check_cached, ensure, select_pins
from toolchain.errors import PinError, ToolchainError, UnavailableError
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins, load_pins
from toolchain.shellenv import binary_path, status_lines

AMD64_BINARY = b"#!/bin/sh\necho fake 1.0.0 amd64\n"
ARM64_BINARY = b"\x7fELF fake 1.0.0 arm64\n"
VENDOR = "https://vendor.example/fake/{version}"


def arch_table(mirror: Mirror) -> dict[str, Any]:
    """The ``fake`` tool with amd64 and arm64 releases served by the mirror."""
    table = tool_table()
    for arch, binary in (("amd64", AMD64_BINARY), ("arm64", ARM64_BINARY)):
        data = tar_gz({"fake": binary})
        url = f"{VENDOR}/fake_{{version}}_linux_{arch}.tar.gz"
        mirror.publish(url.replace("{version}", "1.0.0"), data)
        release = {"url": url, "sha256": sha256(data)}
        if arch == "amd64":
            table["release"].update(release)
        else:
            table["release"]["arm64"] = release
    return table


@pytest.fixture
def arch_pins(mirror: Mirror) -> Pins:
    """``fake`` 1.0.0 with both architectures' releases on the mirror."""
    return make_pins(fake=arch_table(mirror))


def test_arm64_installs_go_to_their_own_dir_and_amd64s_stay_where_they_were(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "toolchain")
    assert layout.tool_dir("nomad", "1.6.3") == tmp_path / "toolchain/nomad/1.6.3"
    assert layout.tool_dir("nomad", "1.6.3", "amd64") == tmp_path / "toolchain/nomad/1.6.3"
    assert layout.tool_dir("nomad", "1.6.3", "arm64") == tmp_path / "toolchain/nomad/linux_arm64/1.6.3"
    assert layout.bin_dir("nomad", "1.6.2", "arm64") == tmp_path / "toolchain/nomad/linux_arm64/1.6.2/bin"


def test_arm64_release_is_downloaded_verified_and_kept_apart(layout: Layout, arch_pins: Pins) -> None:
    out = io.StringIO()
    [outcome] = ensure(layout, arch_pins, ["fake"], "release", stream=out, arch="arm64")
    assert (outcome.action, outcome.arch) == ("downloaded", "arm64"), out.getvalue()
    assert "[fake 1.0.0 linux_arm64] downloading" in out.getvalue()
    tool_dir = layout.tool_dir("fake", "1.0.0", "arm64")
    assert (tool_dir / "bin" / "fake").read_bytes() == ARM64_BINARY
    assert not layout.tool_dir("fake", "1.0.0").exists(), "amd64 is not installed by an arm64 ensure"
    manifest = read_manifest(tool_dir)
    assert manifest is not None and manifest.arch == "arm64"
    assert manifest.details["url"] == "https://vendor.example/fake/1.0.0/fake_1.0.0_linux_arm64.tar.gz"
    assert manifest.details["sha256_source"].startswith("tools.fake.release.arm64.sha256 in ")
    [log] = layout.logs.iterdir()
    assert log.name.startswith("fake-1.0.0-linux_arm64-release-")

    [amd64] = ensure(layout, arch_pins, ["fake"], "release", stream=out)
    assert amd64.action == "downloaded"
    assert (layout.bin_dir("fake", "1.0.0") / "fake").read_bytes() == AMD64_BINARY
    [again] = ensure(layout, arch_pins, ["fake"], "release", stream=out, arch="arm64")
    assert again.action == "cached", "installing amd64 left the arm64 install intact"


def test_installed_per_architecture(layout: Layout, arch_pins: Pins) -> None:
    with pytest.raises(ToolchainError, match=r"\(fake, linux_arm64\) is not installed .* --arch arm64$"):
        installed("fake", layout=layout, pins=arch_pins, arch="arm64")
    ensure(layout, arch_pins, ["fake"], "release", stream=io.StringIO(), arch="arm64")
    arm = installed("fake", layout=layout, pins=arch_pins, arch="arm64")
    assert (arm.arch, arm.sha256, arm.size) == ("arm64", sha256(ARM64_BINARY), len(ARM64_BINARY))
    assert arm.path == layout.bin_dir("fake", "1.0.0", "arm64") / "fake"
    assert installed_versions("fake", layout=layout, pins=arch_pins, arch="arm64") == ("1.0.0",)
    assert installed_versions("fake", layout=layout, pins=arch_pins) == ()
    with pytest.raises(ToolchainError, match=r"run: python3 -m toolchain ensure fake$"):
        installed("fake", layout=layout, pins=arch_pins)
    assert binary_path(layout, arch_pins, "fake", "arm64") == str(arm.path)


def test_an_install_of_another_architecture_is_not_taken_for_this_one(
    layout: Layout, arch_pins: Pins
) -> None:
    ensure(layout, arch_pins, ["fake"], "release", stream=io.StringIO())
    arm_dir = layout.tool_dir("fake", "1.0.0", "arm64")
    shutil.copytree(layout.tool_dir("fake", "1.0.0"), arm_dir)
    assert check_cached(layout, arch_pins.tool("fake").for_arch("arm64")) == "manifest is for linux_amd64"
    with pytest.raises(ToolchainError, match="is not installed"):
        installed("fake", layout=layout, pins=arch_pins, arch="arm64")
    [outcome] = ensure(layout, arch_pins, ["fake"], "release", stream=io.StringIO(), arch="arm64")
    assert outcome.action == "downloaded"
    assert (arm_dir / "bin" / "fake").read_bytes() == ARM64_BINARY


def test_status_lists_arm64_installs_and_their_dir_is_no_other_version(
    layout: Layout, arch_pins: Pins
) -> None:
    ensure(layout, arch_pins, ["fake"], "release", stream=io.StringIO(), arch="arm64")
    status = status_lines(layout, arch_pins)
    assert status[1].startswith("fake ") and "missing" in status[1]
    assert status[2].startswith("fake --arch arm64 ") and " release " in status[2], status
    assert not any("other cached versions" in line for line in status)
    (layout.arch_root("fake", "arm64") / "0.1.0").mkdir()
    assert status_lines(layout, arch_pins)[-1] == "other cached versions: fake/linux_arm64/0.1.0"


def test_an_unavailable_arm64_release_is_refused_with_its_reason(layout: Layout) -> None:
    table = tool_table()
    table["release"]["arm64"] = {"unavailable": "the vendor publishes no checksum for it"}
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO(), arch="arm64")
    assert outcome.action == "failed"
    assert outcome.error == (
        "fake 1.0.0: no official linux_arm64 release can be installed: the vendor publishes no "
        "checksum for it; use --source build"
    )
    assert not layout.tool_dir("fake", "1.0.0", "arm64").exists()
    assert not layout.logs.exists(), "refused before a log was opened"


def test_arm64_selection_skips_and_refuses_amd64_only_tools() -> None:
    amd64_only = tool_table(main="other")
    amd64_only["release"]["members"] = [{"path": "other", "name": "other"}]
    amd64_only["build"]["binaries"][0]["name"] = "other"
    with_arm = tool_table()
    with_arm["release"]["arm64"] = {"url": "https://vendor.example/x", "sha256": "TODO"}
    pins = make_pins(other=amd64_only, fake=with_arm)
    assert [(p.name, p.arch) for p in select_pins(pins, [], "arm64")] == [("fake", "arm64")]
    assert [(p.name, p.arch) for p in select_pins(pins, [])] == [("other", "amd64"), ("fake", "amd64")]
    with pytest.raises(PinError, match="other is pinned for linux_amd64 only"):
        select_pins(pins, ["fake", "other"], "arm64")


# --- cross-builds ----------------------------------------------------------------------------


def test_go_env_targets_linux_on_the_pins_architecture() -> None:
    table = tool_table()
    table["release"]["arm64"] = {"unavailable": "no official checksum"}
    pins = make_pins(fake=table)
    pin = pins.tool("fake")
    amd64 = gobuild.go_env(pin, pins.settings, base={"GOARCH": "386", "GOOS": "windows"})
    assert (amd64["GOOS"], amd64["GOARCH"], amd64["CGO_ENABLED"]) == ("linux", "amd64", "0")
    arm64 = gobuild.go_env(pin.for_arch("arm64"), pins.settings, base={})
    assert (arm64["GOOS"], arm64["GOARCH"], arm64["CGO_ENABLED"]) == ("linux", "arm64", "0")


def test_arm64_build_cross_compiles_into_the_arm64_dir(fake_go: Path, layout: Layout) -> None:
    table = tool_table()
    table["release"]["arm64"] = {"unavailable": "no official checksum"}
    pins = make_pins(fake=table)
    [outcome] = ensure(layout, pins, ["fake"], "build", stream=io.StringIO(), arch="arm64")
    assert outcome.action == "built", outcome.error
    tool_dir = layout.tool_dir("fake", "1.0.0", "arm64")
    assert "for linux/arm64 cgo=0" in (tool_dir / "bin" / "fake").read_text()
    manifest = read_manifest(tool_dir)
    assert manifest is not None and manifest.arch == "arm64"
    assert manifest.details["goos_goarch"] == "linux/arm64"
    assert not layout.tool_dir("fake", "1.0.0").exists()
    [amd64] = ensure(layout, pins, ["fake"], "build", stream=io.StringIO())
    assert amd64.action == "built"
    assert "for linux/amd64 cgo=0" in (layout.bin_dir("fake", "1.0.0") / "fake").read_text()


def test_a_cgo_recipe_is_not_cross_built(fake_go: Path, layout: Layout) -> None:
    table = tool_table()
    table["build"]["cgo"] = True
    table["release"]["arm64"] = {"url": "https://vendor.example/x", "sha256": "TODO"}
    pin = make_pins(fake=table).tool("fake")
    message = (
        "fake 1.0.0 cannot be cross-built for linux_arm64: its recipe needs cgo (tools.fake.build.cgo), "
        "and cross-builds are pure Go (CGO_ENABLED=0, no C cross-compiler); use --source release --arch arm64"
    )
    with pytest.raises(UnavailableError) as refused:
        gobuild.check_buildable(pin.for_arch("arm64"))
    assert str(refused.value) == message
    gobuild.check_buildable(pin)  # amd64 builds with cgo as before
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "build", stream=io.StringIO(), arch="arm64")
    assert (outcome.action, outcome.error) == ("failed", message)
    assert calls(fake_go) == [], "go never ran"


# --- the command line, with the project's pins -----------------------------------------------


@pytest.mark.parametrize("tool", ["pulumi", "pulumi-resource-command"])
def test_cli_refuses_arm64_for_the_controllers_tools(
    tool: str, layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["ensure", "--arch", "arm64", tool]) == 1
    err = capsys.readouterr().err
    assert f"toolchain: error: {tool} is pinned for linux_amd64 only" in err
    assert not layout.root.exists(), "refused before anything was written"


def test_cli_path_names_the_arch_in_its_fix(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["path", "--arch", "arm64", "nomad@1.6.2"]) == 1
    assert "run: python3 -m toolchain ensure nomad@1.6.2 --arch arm64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["ensure", "--arch", "riscv64", "nomad"])
    assert "invalid choice: 'riscv64'" in capsys.readouterr().err


def test_cli_refuses_a_cross_build_of_nomad(
    layout: Layout, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nomad's recipe needs cgo: refused for arm64 before go runs (go is not even on PATH)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert load_pins().tool("nomad").build.cgo
    assert cli.main(["ensure", "--arch", "arm64", "--source", "build", "nomad"]) == 1
    err = capsys.readouterr().err
    assert "nomad 1.6.3 cannot be cross-built for linux_arm64: its recipe needs cgo" in err
    assert "[nomad 1.6.3 linux_arm64] FAILED" in err
    assert "toolchain: 1 of 1 tools failed (linux_arm64)" in err
    assert not layout.tool_dir("nomad", "1.6.3", "arm64").exists()
