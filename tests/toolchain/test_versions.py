"""Extra versions of a tool: [tools.NAME.versions."VERSION"], TOOL@VERSION, and their installs."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest

from tests.toolchain.helpers import FAKE_BINARY, make_pins, sha256, tar_gz, tool_table, write
from toolchain import cli
from toolchain.api import installed, installed_versions
from toolchain.ensure import check_cached, ensure, select_pins
from toolchain.errors import PinError, ToolchainError
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import SHA256_PLACEHOLDER, Pins, load_pins, merge_version, parse_tool_spec
from toolchain.shellenv import binary_path, env_lines, status_lines

OLD = "0.9.0"
OLD_BINARY = b"#!/bin/sh\necho fake-tool 0.9.0\n"


def old_version(**overrides: Any) -> dict[str, Any]:
    """A ``versions."0.9.0"`` override table for the ``fake`` tool (override any key)."""
    table: dict[str, Any] = {"build": {"require": [f"example.com/fake@v{OLD}"]}}
    table.update(overrides)
    return table


def with_versions(base: dict[str, Any] | None = None, **versions: dict[str, Any]) -> dict[str, Any]:
    """A ``fake`` tool table with extra versions (default: 0.9.0)."""
    table = copy.deepcopy(base or tool_table())
    table["versions"] = versions or {OLD: old_version()}
    return table


# --- parsing ---------------------------------------------------------------------------------


def test_project_extra_versions_are_older_open_source_patches() -> None:
    pins = load_pins()
    assert pins.versions("nomad")[0] == pins.tool("nomad").version
    for tool in ("nomad", "consul"):
        default = pins.tool(tool)
        extras = pins.versions(tool)[1:]
        assert extras, f"versions.toml declares no extra {tool} version"
        for version in extras:
            pin = pins.tool(tool, version)
            assert not pin.is_default and pin.spec == f"{tool}@{version}"
            key = tuple(int(p) for p in version.split("."))
            assert key < tuple(int(p) for p in default.version.split("."))
            assert key[:2] == tuple(int(p) for p in default.version.split("."))[:2]
            assert pin.build.require[0] == f"github.com/hashicorp/{tool}@v{version}"
            assert set(pin.licences) == {"MPL-2.0"}
            assert pin.release.sha256_pinned or pin.release.sha256 == SHA256_PLACEHOLDER
            assert pin.release.sha256 != default.release.sha256 or not pin.release.sha256_pinned
    nomad = pins.tool("nomad", "1.6.2")
    assert nomad.build.commit.startswith("73e372ad9403")
    api = "github.com/hashicorp/nomad/api@v0.0.0-20230913164725-73e372ad9403"
    assert nomad.build.licence_check == (api,)
    assert f"github.com/hashicorp/nomad/api => {api.replace('@', ' ')}" in nomad.build.replace


def test_extra_version_overrides_only_what_it_names() -> None:
    override = old_version(licences=["Apache-2.0"])
    override["release"] = {"sha256": "ab" * 32}
    pins = make_pins(fake=with_versions(**{OLD: override}))
    default, extra = pins.tool("fake"), pins.tool("fake", OLD)
    assert default.version == "1.0.0" and default.is_default and default.spec == "fake"
    assert extra.version == OLD and not extra.is_default and extra.spec == f"fake@{OLD}"
    assert extra.licences == ("Apache-2.0",)
    assert extra.release.sha256 == "ab" * 32 and extra.release.url == default.release.url
    assert extra.build.require == (f"example.com/fake@v{OLD}",)
    assert extra.build.binaries == default.build.binaries
    assert (extra.main, extra.env, extra.on_path) == (default.main, default.env, default.on_path)
    assert extra.expand("{version}") == OLD
    assert pins.versions("fake") == ("1.0.0", OLD)
    assert pins.describe_versions("fake") == f"fake 1.0.0 (default), {OLD}"
    assert [p.spec for p in pins.all_pins()] == ["fake", f"fake@{OLD}"]
    assert list(pins.tools) == ["fake"]


def test_merge_replaces_lists_whole_and_sub_tables_key_by_key() -> None:
    base = tool_table()
    base["build"]["replace"] = ["a => b v1.0.0", "c => d v2.0.0"]
    merged = merge_version(base, {"build": {"replace": ["a => b v0.9.0"], "cgo": True}}, OLD)
    assert merged["version"] == OLD
    assert merged["build"]["replace"] == ["a => b v0.9.0"]
    assert merged["build"]["cgo"] is True
    assert merged["build"]["require"] == base["build"]["require"]
    assert merged["release"] == base["release"]
    assert "versions" not in merge_version(with_versions(), {}, OLD)
    assert base["build"]["replace"] == ["a => b v1.0.0", "c => d v2.0.0"], "base must not change"


@pytest.mark.parametrize("key", ["version", "main", "env", "on_path", "versions"])
def test_extra_version_cannot_change_what_the_tool_shares(key: str) -> None:
    with pytest.raises(PinError, match=rf'versions\."0\.9\.0": {key} cannot differ'):
        make_pins(fake=with_versions(**{OLD: old_version(**{key: "x"})}))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # Inherited from the default, these would verify or build the default version.
        (lambda b, o: b["release"].update(sha256="ab" * 32), "release.sha256: not set, so it would inherit"),
        (lambda b, o: b["build"].update(commit="c0ffee1234567890"), "build.commit: not set"),
        (lambda b, o: o.pop("build"), "build.require: not set, so it would inherit"),
        (lambda b, o: o.update(release="nope"), r'versions\."0\.9\.0"\.release: expected dict'),
        (lambda b, o: o["build"].update(require=["example.com/fake"]), "module@vVERSION"),
        (lambda b, o: o.update(licences=["BUSL-1.1"]), "licences"),
    ],
)
def test_invalid_extra_versions_are_rejected(mutate: Any, message: str) -> None:
    base = tool_table()
    override = old_version()
    mutate(base, override)
    with pytest.raises(PinError, match=message):
        make_pins(fake=with_versions(base, **{OLD: override}))


def test_inherited_entries_naming_the_default_commit_are_rejected() -> None:
    base = tool_table()
    base["build"]["commit"] = "c0ffee1234567890"
    base["build"]["licence_check"] = ["example.com/fake/api@v0.0.0-20230101000000-c0ffee123456"]
    override = old_version()
    override["build"]["commit"] = "deadbeef"
    with pytest.raises(PinError, match=r"build\.licence_check: not set, so it would inherit"):
        make_pins(fake=with_versions(base, **{OLD: override}))
    override["build"]["licence_check"] = []
    assert make_pins(fake=with_versions(base, **{OLD: override})).tool("fake", OLD).build.commit == "deadbeef"


def test_extra_version_may_pin_its_own_sha256_or_the_placeholder() -> None:
    base = tool_table()
    base["release"]["sha256"] = "ab" * 32
    override = old_version(release={"sha256": SHA256_PLACEHOLDER})
    extra = make_pins(fake=with_versions(base, **{OLD: override})).tool("fake", OLD)
    assert not extra.release.sha256_pinned


@pytest.mark.parametrize("version", ["1.0.0", "../evil", "v 1"])
def test_bad_or_duplicate_version_keys_are_rejected(version: str) -> None:
    with pytest.raises(PinError, match=r"already the default|not a version"):
        make_pins(fake=with_versions(**{version: old_version()}))


# --- TOOL@VERSION ----------------------------------------------------------------------------


def test_parse_tool_spec() -> None:
    assert parse_tool_spec("nomad") == ("nomad", None)
    assert parse_tool_spec("nomad@1.6.2") == ("nomad", "1.6.2")


@pytest.mark.parametrize("spec", ["nomad@", "@1.6.2", "nomad@1@2", "no mad", ""])
def test_malformed_tool_specs_are_rejected(spec: str) -> None:
    with pytest.raises(PinError, match="is not TOOL or TOOL@VERSION"):
        parse_tool_spec(spec)


def test_unknown_version_names_the_versions_that_exist() -> None:
    pins = make_pins(fake=with_versions())
    with pytest.raises(PinError, match=r"fake 0\.8\.0 is not pinned: versions.toml has "
                       r"fake 1\.0\.0 \(default\), 0\.9\.0; declare it under "
                       r'\[tools\.fake\.versions\."0\.8\.0"\]'):
        pins.select("fake@0.8.0")
    with pytest.raises(PinError, match="unknown tool 'nope'"):
        pins.select("nope@1.0.0")
    assert pins.select("fake@1.0.0") is pins.tool("fake")


def test_selection_defaults_to_default_versions_and_dedupes() -> None:
    pins = make_pins(fake=with_versions())
    assert [p.spec for p in select_pins(pins, [])] == ["fake"]
    chosen = select_pins(pins, [f"fake@{OLD}", "fake", "fake@1.0.0", f"fake@{OLD}"])
    assert [p.spec for p in chosen] == [f"fake@{OLD}", "fake"]


# --- installs --------------------------------------------------------------------------------


@pytest.fixture
def two_versions(tmp_path: Path) -> Pins:
    """``fake`` 1.0.0 (default) and 0.9.0 with file:// releases and pinned sha256s."""
    table = tool_table()
    overrides = {}
    for version, binary in (("1.0.0", FAKE_BINARY), (OLD, OLD_BINARY)):
        data = tar_gz({"fake": binary})
        write(tmp_path / "www" / version / "fake.tar.gz", data)
        overrides[version] = {"sha256": sha256(data)}
    table["release"].update(url=(tmp_path / "www").as_uri() + "/{version}/fake.tar.gz",
                            **overrides["1.0.0"])
    return make_pins(fake=with_versions(table, **{OLD: old_version(release=overrides[OLD])}))


def test_plain_ensure_installs_only_the_default_version(layout: Layout, two_versions: Pins) -> None:
    outcomes = ensure(layout, two_versions, [], "release", stream=io.StringIO())
    assert [(o.tool, o.version, o.action) for o in outcomes] == [("fake", "1.0.0", "downloaded")]
    assert not layout.tool_dir("fake", OLD).exists()


def test_extra_version_is_installed_and_verified_like_the_default(layout: Layout, two_versions: Pins) -> None:
    out = io.StringIO()
    [outcome] = ensure(layout, two_versions, [f"fake@{OLD}"], "release", stream=out)
    assert (outcome.version, outcome.action) == (OLD, "downloaded"), out.getvalue()
    assert f"[fake {OLD}] downloading" in out.getvalue()
    tool_dir = layout.tool_dir("fake", OLD)
    assert (tool_dir / "bin" / "fake").read_bytes() == OLD_BINARY
    manifest = read_manifest(tool_dir)
    assert manifest is not None and (manifest.tool, manifest.version) == ("fake", OLD)
    assert (tool_dir / "SHA256SUMS").read_text() == f"{sha256(OLD_BINARY)}  bin/fake\n"
    assert not layout.tool_dir("fake", "1.0.0").exists()
    assert check_cached(layout, two_versions.tool("fake", OLD)) is None
    [again] = ensure(layout, two_versions, [f"fake@{OLD}"], "release", stream=out)
    assert again.action == "cached"
    (tool_dir / "bin" / "fake").write_bytes(FAKE_BINARY)
    problem = check_cached(layout, two_versions.tool("fake", OLD))
    assert problem == "bin/fake does not match its recorded sha256"


def test_extra_version_with_a_wrong_sha256_is_refused(layout: Layout, two_versions: Pins) -> None:
    table = with_versions(tool_table(), **{OLD: old_version(release={"sha256": "ab" * 32})})
    table["release"]["url"] = two_versions.tool("fake").release.url
    [outcome] = ensure(layout, make_pins(fake=table), [f"fake@{OLD}"], "release", stream=io.StringIO())
    assert outcome.action == "failed" and "its sha256 is" in outcome.error
    assert not layout.tool_dir("fake", OLD).exists()


def test_installed_and_installed_versions_per_version(layout: Layout, two_versions: Pins) -> None:
    assert installed_versions("fake", layout=layout, pins=two_versions) == ()
    with pytest.raises(ToolchainError, match=f"fake {OLD} .* run: python3 -m toolchain ensure fake@{OLD}"):
        installed("fake", OLD, layout=layout, pins=two_versions)
    ensure(layout, two_versions, [f"fake@{OLD}"], "release", stream=io.StringIO())
    assert installed_versions("fake", layout=layout, pins=two_versions) == (OLD,)
    old = installed("fake", version=OLD, layout=layout, pins=two_versions)
    assert (old.version, old.sha256) == (OLD, sha256(OLD_BINARY))
    assert old.path == layout.bin_dir("fake", OLD) / "fake"
    with pytest.raises(ToolchainError, match=r"run: python3 -m toolchain ensure fake$"):
        installed("fake", layout=layout, pins=two_versions)
    ensure(layout, two_versions, ["fake"], "release", stream=io.StringIO())
    assert installed_versions("fake", layout=layout, pins=two_versions) == ("1.0.0", OLD)
    assert installed("fake", layout=layout, pins=two_versions).sha256 == sha256(FAKE_BINARY)
    with pytest.raises(PinError, match=r"fake 0\.8\.0 is not pinned"):
        installed("fake", "0.8.0", layout=layout, pins=two_versions)


def test_path_status_and_env_with_two_versions(layout: Layout, two_versions: Pins) -> None:
    ensure(layout, two_versions, [f"fake@{OLD}"], "release", stream=io.StringIO())
    assert binary_path(layout, two_versions, f"fake@{OLD}") == str(layout.bin_dir("fake", OLD) / "fake")
    with pytest.raises(ToolchainError, match=r"ensure fake$"):
        binary_path(layout, two_versions, "fake")
    status = status_lines(layout, two_versions)
    assert status[1].startswith("fake ") and "missing" in status[1]
    assert status[2].startswith(f"fake@{OLD} ") and "release" in status[2]
    assert not any("other cached versions" in line for line in status)
    (layout.root / "fake" / "0.1.0").mkdir()
    assert status_lines(layout, two_versions)[-1] == "other cached versions: fake/0.1.0"
    # env exports the default version only (here: not installed).
    assert env_lines(layout, two_versions)[0].startswith("# fake 1.0.0 is not installed")


def test_cli_names_versions_in_errors(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["path", "nomad@0.0.1"]) == 1
    err = capsys.readouterr().err
    assert "nomad 0.0.1 is not pinned" in err and "(default)" in err
    assert cli.main(["ensure", "nomad@"]) == 1
    assert "is not TOOL or TOOL@VERSION" in capsys.readouterr().err
    assert cli.main(["path", "nomad@1.6.2"]) == 1
    assert "run: python3 -m toolchain ensure nomad@1.6.2" in capsys.readouterr().err
    assert cli.main(["status"]) == 0
    assert "\nnomad@1.6.2 " in capsys.readouterr().out
