"""The cAdvisor pin: the project's own main (toolchain/cadvisor/) built on the pinned library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolchain import gobuild
from toolchain.pins import SHA256_PLACEHOLDER, ToolPin, load_pins

#: The checksum published in the v0.49.1 release notes (the only official one at hand).
OFFICIAL_SHA256 = {"0.49.1": "1d5cc701a3fcdf1e8ed1c86da5304b896a6997d9e6673139e78a6f87812495b0"}
MAIN_GO = gobuild.LOCAL_SOURCES / "cadvisor" / "main.go"


@pytest.fixture
def pin() -> ToolPin:
    """The project's cAdvisor pin."""
    return load_pins().tool("cadvisor")


def go_imports(source: str) -> set[str]:
    """Import paths of a Go file's import block."""
    block = re.search(r"^import \((.*?)^\)", source, re.S | re.M)
    assert block is not None
    return set(re.findall(r'"([^"]+)"', block.group(1)))


def test_cadvisor_builds_the_local_main_with_the_version_flags(pin: ToolPin) -> None:
    assert not pin.build.unavailable
    [binary] = pin.build.binaries
    assert (binary.name, binary.package) == ("cadvisor", "./cadvisor")
    flags = gobuild.ldflags_for(pin, binary.ldflags, date="2024-03-02T02:14:53Z")
    assert f"github.com/google/cadvisor/version.Version=v{pin.version} " in flags
    assert f"github.com/google/cadvisor/version.Revision={pin.build.commit} " in flags
    assert re.fullmatch(r"[0-9a-f]{40}", pin.build.commit)


def test_cadvisor_release_and_build_are_the_same_version(pin: ToolPin) -> None:
    assert f"github.com/google/cadvisor@v{pin.version}" in pin.build.require
    assert pin.expand(pin.release.url).endswith(f"/v{pin.version}/cadvisor-v{pin.version}-linux-amd64")
    assert pin.release.sha256 == OFFICIAL_SHA256.get(pin.version, SHA256_PLACEHOLDER)
    assert pin.licences == ("Apache-2.0",)


def test_cadvisor_requires_exactly_the_modules_main_imports(pin: ToolPin) -> None:
    imports = go_imports(MAIN_GO.read_text(encoding="utf-8"))
    external = {path for path in imports if "." in path.split("/")[0]}
    required = [item.split("@")[0] for item in pin.build.require]
    assert required and external, (required, external)
    for module in required:
        assert any(path == module or path.startswith(module + "/") for path in external), module
    for path in external:
        assert any(path == m or path.startswith(m + "/") for m in required), path


def test_cadvisor_main_is_copied_into_the_wrapper(pin: ToolPin, tmp_path: Path) -> None:
    assert gobuild.copy_local_packages(pin, tmp_path) == ["cadvisor"]
    assert (tmp_path / "cadvisor" / "main.go").read_text(encoding="utf-8").startswith("// Command cadvisor")
    assert "./cadvisor" not in gobuild.wrapper_tools_go(pin)
    assert f"\tgithub.com/google/cadvisor v{pin.version}\n" in gobuild.wrapper_go_mod(pin)
