"""Building from source, with a stand-in go command (no network, no compiler)."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.toolchain.conftest import add_module, calls
from tests.toolchain.helpers import make_pins, tool_table
from tests.toolchain.test_licence import BUSL, MPL
from toolchain import gobuild
from toolchain.ensure import ensure
from toolchain.errors import (
    BuildError,
    ForbiddenModuleError,
    LicenceError,
    ToolchainError,
    UnavailableError,
)
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins

_OPEN_LOGS: list[IO[str]] = []


@pytest.fixture(autouse=True)
def _close_logs() -> Iterator[None]:
    """Close the build logs opened by :func:`context` after each test."""
    yield
    while _OPEN_LOGS:
        _OPEN_LOGS.pop().close()


def context(pins: Pins, tmp_path: Path) -> gobuild.GoContext:
    """A GoContext logging into tmp_path/build.log."""
    pin = pins.tool("fake")
    log_path = tmp_path / "build.log"
    log = log_path.open("a", encoding="utf-8")
    _OPEN_LOGS.append(log)
    return gobuild.GoContext(
        pin=pin,
        settings=pins.settings,
        log_path=log_path,
        log=log,
        env=gobuild.go_env(pin, pins.settings),
    )


def test_wrapper_go_mod_requires_and_replaces() -> None:
    table = tool_table()
    table["build"]["require"] = ["example.com/fake@v1.0.0", "example.com/sdk@v2.0.0"]
    table["build"]["replace"] = ["example.com/x => example.com/y v0.1.0"]
    text = gobuild.wrapper_go_mod(make_pins(fake=table).tool("fake"))
    assert text.startswith("module hashicluster.local/toolchain/fake\n\ngo 1.21\n")
    assert "\texample.com/fake v1.0.0\n\texample.com/sdk v2.0.0\n" in text
    assert "replace (\n\texample.com/x => example.com/y v0.1.0\n)" in text


def test_tools_go_imports_the_main_packages() -> None:
    text = gobuild.wrapper_tools_go(make_pins().tool("fake"))
    assert "//go:build tools" in text
    assert '_ "example.com/fake/cmd/fake"' in text


def test_go_env_uses_only_the_pinned_proxy_and_pinned_cgo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHICLUSTER_GOPROXY", raising=False)
    pins = make_pins()
    env = gobuild.go_env(pins.tool("fake"), pins.settings, base={"GOPROXY": "x,direct"})
    assert env["GOPROXY"] == "https://proxy.example.invalid"
    assert env["CGO_ENABLED"] == "0"
    assert env["GOWORK"] == "off"
    table = tool_table()
    table["build"]["cgo"] = True
    cgo_pin = make_pins(fake=table).tool("fake")
    assert gobuild.go_env(cgo_pin, pins.settings, base={})["CGO_ENABLED"] == "1"


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("require github.com/hashicorp/consul/envoyextensions v0.1.0", True),
        ("\tgithub.com/hashicorp/consul/troubleshoot v0.1.0 // indirect", True),
        ("github.com/hashicorp/consul/troubleshoot/sub v0.1.0", True),
        ("github.com/hashicorp/consul/api v1.18.1", False),
        ("github.com/hashicorp/consul/envoyextensionsx v1", False),
        ("// github.com/hashicorp/consul/envoyextensions is not used", False),
    ],
)
def test_forbidden_modules_are_detected(text: str, hit: bool) -> None:
    forbidden = ["github.com/hashicorp/consul/envoyextensions", "github.com/hashicorp/consul/troubleshoot"]
    found = gobuild.forbidden_in(gobuild.strip_go_mod_comments(text), forbidden)
    assert bool(found) is hit


def test_build_installs_binaries_with_version_ldflags(fake_go: Path, tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    names, details = gobuild.build_tool(context(make_pins(), tmp_path), stage)
    assert names == ["fake"]
    built = (stage / "bin" / "fake").read_text()
    assert "-s -w -X example.com/fake/version.Version=1.0.0" in built
    assert (stage / "modules.txt").read_text().startswith("example.com/dep v1.0.0\n")
    assert details["go"] == "go1.99.0"
    assert details["cgo"] is False
    assert [c.split()[0:2] for c in calls(fake_go)][:2] == [["mod", "download"], ["mod", "tidy"]]


def test_build_copies_module_files(fake_go: Path, tmp_path: Path) -> None:
    mod = add_module(fake_go, "example.com/fake@v1.0.0", MPL, "module example.com/fake\n")
    (mod / "scripts").mkdir()
    (mod / "scripts" / "helper").write_text("#!/bin/sh\n")
    table: dict[str, Any] = copy.deepcopy(tool_table())
    table["build"]["files"] = [
        {"name": "helper", "module": "example.com/fake", "path": "scripts/helper"},
        {"name": "extra", "module": "example.com/fake", "path": "nope", "optional": True},
    ]
    stage = tmp_path / "stage"
    names, _ = gobuild.build_tool(context(make_pins(fake=table), tmp_path), stage)
    assert names == ["fake", "helper"]
    assert (stage / "bin" / "helper").stat().st_mode & 0o111


def test_wrong_licence_refuses_before_anything_is_resolved(fake_go: Path, tmp_path: Path) -> None:
    add_module(fake_go, "example.com/fake@v1.0.0", BUSL, "module example.com/fake\n")
    with pytest.raises(LicenceError, match=r"BUSL-1\.1"):
        gobuild.build_tool(context(make_pins(), tmp_path), tmp_path / "stage")
    assert all(not c.startswith(("mod tidy", "build")) for c in calls(fake_go))


def test_forbidden_module_in_pinned_go_mod_refuses_before_tidy(fake_go: Path, tmp_path: Path) -> None:
    go_mod = "module example.com/fake\n\nrequire example.com/forbidden v0.1.0\n"
    add_module(fake_go, "example.com/fake@v1.0.0", MPL, go_mod)
    with pytest.raises(ForbiddenModuleError, match=r"example\.com/forbidden"):
        gobuild.build_tool(context(make_pins(), tmp_path), tmp_path / "stage")
    assert all(not c.startswith("mod tidy") for c in calls(fake_go))


def test_forbidden_module_in_resolved_graph_refuses_before_build(
    fake_go: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_SUM", "example.com/forbidden v0.1.0/go.mod h1:x=\n")
    with pytest.raises(ForbiddenModuleError, match=r"wrapper go\.sum"):
        gobuild.build_tool(context(make_pins(), tmp_path), tmp_path / "stage")
    assert all(not c.startswith("build") for c in calls(fake_go))


def test_failed_go_command_names_tool_version_and_log(
    fake_go: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "build")
    ctx = context(make_pins(), tmp_path)
    with pytest.raises(BuildError, match=r"fake 1\.0\.0: `go build` failed .*build\.log"):
        gobuild.build_tool(ctx, tmp_path / "stage")
    ctx.log.flush()
    assert "failed on purpose" in ctx.log_path.read_text()


def test_unavailable_recipe_is_refused_without_running_go(fake_go: Path, tmp_path: Path) -> None:
    table = tool_table()
    table["build"]["unavailable"] = "the proxy does not serve it"
    with pytest.raises(UnavailableError, match="the proxy does not serve it"):
        gobuild.build_tool(context(make_pins(fake=table), tmp_path), tmp_path / "stage")
    assert calls(fake_go) == []


def test_local_packages_are_copied_into_the_wrapper_and_not_imported(tmp_path: Path) -> None:
    table = tool_table()
    table["build"]["binaries"].append({"name": "host", "package": "./host"})
    pin = make_pins(fake=table).tool("fake")
    sources = tmp_path / "sources"
    (sources / "host").mkdir(parents=True)
    (sources / "host" / "main.go").write_text("package main\n")
    (sources / "host" / "notes.txt").write_text("not copied\n")
    src = tmp_path / "src"
    assert gobuild.copy_local_packages(pin, src, sources) == ["host"]
    assert (src / "host" / "main.go").read_text() == "package main\n"
    assert not (src / "host" / "notes.txt").exists()
    tools_go = gobuild.wrapper_tools_go(pin)
    assert "./host" not in tools_go and "example.com/fake/cmd/fake" in tools_go


def test_missing_local_package_is_an_error(tmp_path: Path) -> None:
    table = tool_table()
    table["build"]["binaries"].append({"name": "host", "package": "./nothing"})
    pin = make_pins(fake=table).tool("fake")
    with pytest.raises(ToolchainError, match="has no Go files"):
        gobuild.copy_local_packages(pin, tmp_path / "src", tmp_path)


def test_project_language_host_source_is_present() -> None:
    assert (gobuild.LOCAL_SOURCES / "langhost" / "main.go").is_file()


def test_ensure_build_then_cached_without_running_go(
    fake_go: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    pins = make_pins()
    out = io.StringIO()
    [first] = ensure(layout, pins, ["fake"], "build", stream=out)
    assert first.action == "built", out.getvalue()
    manifest = read_manifest(layout.tool_dir("fake", "1.0.0"))
    assert manifest is not None and manifest.source == "build"
    assert (layout.tool_dir("fake", "1.0.0") / "modules.txt").is_file()
    assert not (layout.tool_dir("fake", "1.0.0") / "src").exists()
    assert list(layout.tmp.iterdir()) == []
    n_calls = len(calls(fake_go))
    [second] = ensure(layout, pins, ["fake"], "build", stream=out)
    assert second.action == "cached"
    assert len(calls(fake_go)) == n_calls


def test_failed_build_leaves_nothing_installed(
    fake_go: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "build")
    [outcome] = ensure(layout, make_pins(), ["fake"], "build", stream=io.StringIO())
    assert outcome.action == "failed"
    assert "fake 1.0.0" in outcome.error and str(layout.logs) in outcome.error
    assert not layout.tool_dir("fake", "1.0.0").exists()
    assert list(layout.tmp.iterdir()) == []


def test_local_sources_digest_follows_the_go_files(tmp_path: Path) -> None:
    table = tool_table()
    table["build"]["binaries"] = [{"name": "fake", "package": "./host"}]
    pin = make_pins(fake=table).tool("fake")
    (tmp_path / "host").mkdir()
    main = tmp_path / "host" / "main.go"
    main.write_text("package main\n")
    first = gobuild.local_sources_digest(pin, tmp_path)
    (tmp_path / "host" / "main_test.go").write_text("package main\n// tests do not count\n")
    assert gobuild.local_sources_digest(pin, tmp_path) == first
    main.write_text("package main\n\nfunc main() {}\n")
    assert gobuild.local_sources_digest(pin, tmp_path) not in ("", first)
    assert gobuild.local_sources_digest(make_pins(fake=tool_table()).tool("fake"), tmp_path) == ""


def test_release_without_anything_to_verify_is_refused_even_when_go_is_there(
    fake_go: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--source release downloads and verifies, or refuses: it never switches to a Go build."""
    monkeypatch.setenv("HASHICLUSTER_CACHE", str(tmp_path / "cache"))
    from toolchain.paths import Layout

    table = copy.deepcopy(tool_table())
    table["release"]["sha256"] = "TODO"
    out = io.StringIO()
    [outcome] = ensure(Layout.from_env(), make_pins(fake=table), ["fake"], "release", stream=out)
    assert outcome.action == "failed", out.getvalue()
    assert "nothing to verify its release artefact" in outcome.error
    assert calls(fake_go) == []


def _with_old_version(**build: Any) -> dict[str, Any]:
    """The ``fake`` tool with an extra version 0.9.0 whose build overrides ``build`` keys."""
    table: dict[str, Any] = copy.deepcopy(tool_table())
    table["versions"] = {"0.9.0": {"build": {"require": ["example.com/fake@v0.9.0"], **build}}}
    return table


def test_extra_version_is_built_from_its_own_modules_into_its_own_dir(
    fake_go: Path, layout: Layout
) -> None:
    add_module(fake_go, "example.com/fake@v0.9.0", MPL, "module example.com/fake\n")
    pins = make_pins(fake=_with_old_version(replace=["example.com/x => example.com/y v0.0.9"]))
    [outcome] = ensure(layout, pins, ["fake@0.9.0"], "build", stream=io.StringIO())
    assert (outcome.version, outcome.action) == ("0.9.0", "built"), outcome.error
    tool_dir = layout.tool_dir("fake", "0.9.0")
    assert "Version=0.9.0" in (tool_dir / "bin" / "fake").read_text()
    manifest = read_manifest(tool_dir)
    assert manifest is not None and manifest.version == "0.9.0" and manifest.source == "build"
    assert manifest.details["require"] == ["example.com/fake@v0.9.0"]
    assert manifest.details["replace"] == ["example.com/x => example.com/y v0.0.9"]
    assert "mod download -json example.com/fake@v0.9.0" in calls(fake_go)
    assert not any("@v1.0.0" in c for c in calls(fake_go))
    assert not layout.tool_dir("fake", "1.0.0").exists()


def test_extra_version_gets_the_same_licence_and_forbidden_module_checks(
    fake_go: Path, layout: Layout
) -> None:
    add_module(fake_go, "example.com/fake@v0.9.0", BUSL, "module example.com/fake\n")
    add_module(fake_go, "example.com/fake/api@v0.9.0", MPL, "module example.com/fake/api\n")
    pins = make_pins(fake=_with_old_version(licence_check=["example.com/fake/api@v0.9.0"]))
    [outcome] = ensure(layout, pins, ["fake@0.9.0"], "build", stream=io.StringIO())
    assert outcome.action == "failed" and "BUSL-1.1" in outcome.error
    add_module(fake_go, "example.com/fake@v0.9.0", MPL, "module example.com/fake\n")
    add_module(fake_go, "example.com/fake/api@v0.9.0", BUSL, "module example.com/fake/api\n")
    [outcome] = ensure(layout, pins, ["fake@0.9.0"], "build", stream=io.StringIO())
    assert outcome.action == "failed" and "example.com/fake/api@v0.9.0" in outcome.error
    add_module(fake_go, "example.com/fake/api@v0.9.0", MPL,
               "module example.com/fake/api\n\nrequire example.com/forbidden v0.1.0\n")
    [outcome] = ensure(layout, pins, ["fake@0.9.0"], "build", stream=io.StringIO())
    assert outcome.action == "failed" and "example.com/forbidden" in outcome.error
    assert not layout.tool_dir("fake", "0.9.0").exists()
    assert all(not c.startswith(("mod tidy", "build")) for c in calls(fake_go))
