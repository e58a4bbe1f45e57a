"""Pin file parsing and validation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.toolchain.helpers import make_pins, pins_data, tool_table, with_release
from toolchain.errors import PinError
from toolchain.pins import (
    PINS_FILE,
    SHA256_PLACEHOLDER,
    VERSIONS_ENV,
    ReleaseRecipe,
    load_pins,
    parse_pins,
    pins_file,
)


def project_releases() -> list[tuple[str, ReleaseRecipe]]:
    """(``TOOL[@VERSION] ARCH``, release) for every installable release of every pinned version."""
    return [
        (f"{pin.spec} {arch}", pin.release_for(arch))
        for pin in load_pins().all_pins()
        for arch in pin.architectures
        if arch not in pin.arch_unavailable
    ]


def test_project_pin_file_is_valid() -> None:
    pins = load_pins()
    assert {"pulumi", "pulumi-resource-command", "consul", "nomad"} <= set(pins.tools)
    assert "direct" not in pins.settings.goproxy
    assert "github.com/hashicorp/consul/envoyextensions" in pins.settings.forbidden_modules
    assert "github.com/hashicorp/consul/troubleshoot" in pins.settings.forbidden_modules


def test_project_pins_stay_on_open_source_versions() -> None:
    pins = load_pins()
    nomad = tuple(int(p) for p in pins.tool("nomad").version.split("."))
    assert nomad < (1, 6, 6), "Nomad 1.6.6 and later are not open source"
    consul = tuple(int(p) for p in pins.tool("consul").version.split("."))
    assert consul[:2] == (1, 14)
    assert pins.tool("pulumi-resource-command").version == "1.2.1"
    for pin in pins.tools.values():
        assert set(pin.licences) <= {"MPL-2.0", "Apache-2.0"}


def test_every_release_sha256_is_pinned_or_the_placeholder() -> None:
    pins = load_pins().all_pins()
    assert len(pins) > len(load_pins().tools), "every tool, and the extra Nomad and Consul versions"
    releases = project_releases()
    assert len(releases) > len(pins), "and the arm64 releases of the machine tools"
    for _, release in releases:
        assert release.sha256_pinned or release.sha256 == SHA256_PLACEHOLDER


def test_every_release_can_be_verified_without_go() -> None:
    """A placeholder sha256 needs the vendor's checksum list: release users have no Go to fall
    back on."""
    unverifiable = [
        name for name, release in project_releases()
        if not release.sha256_pinned and not release.checksums_url
    ]
    assert unverifiable == [], (
        f"{unverifiable}: sha256 = {SHA256_PLACEHOLDER!r} without a checksums_url in versions.toml; "
        "pin the release's sha256 or name the vendor's checksum list"
    )


def test_release_urls_are_the_vendors_https_ones() -> None:
    releases = project_releases()
    assert releases and all(release.url for _, release in releases), "every release has a URL"
    for name, release in releases:
        for url in (release.url, release.checksums_url):
            assert not url or url.startswith("https://"), f"{name}: {url}"


def test_command_provider_release_is_checked_against_pulumis_checksum_list() -> None:
    pin = load_pins().tool("pulumi-resource-command")
    release = "https://github.com/pulumi/pulumi-command/releases/download/v1.2.1"
    assert pin.expand(pin.release.url) == f"{release}/pulumi-resource-command-v1.2.1-linux-amd64.tar.gz"
    assert pin.expand(pin.release.checksums_url) == f"{release}/pulumi-command_1.2.1_checksums.txt"
    assert [m.path for m in pin.release.members] == ["pulumi-resource-command"]


def test_a_sites_own_pin_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "versions.toml"
    text = PINS_FILE.read_text(encoding="utf-8").replace('version = "1.6.3"', 'version = "1.6.4"')
    site.write_text(text, encoding="utf-8")
    assert pins_file() == PINS_FILE
    monkeypatch.setenv(VERSIONS_ENV, str(site))
    assert pins_file() == site
    assert load_pins().tool("nomad").version == "1.6.4"
    monkeypatch.setenv(VERSIONS_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(PinError, match=rf"missing.toml \(\${VERSIONS_ENV}\) does not exist; point"):
        load_pins()


def test_expand_fills_version_commit_and_date() -> None:
    table = tool_table()
    table["build"]["commit"] = "abc123"
    pin = make_pins(fake=table).tool("fake")
    assert pin.expand("v{version}-{commit}-{date}", date="2023") == "v1.0.0-abc123-2023"


def test_unknown_tool_lists_known_ones() -> None:
    with pytest.raises(PinError, match="pins fake"):
        make_pins().tool("nope")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.update(licences=["BUSL-1.1"]), "licences"),
        (lambda t: t.update(main="other"), "main"),
        (lambda t: t["release"].update(sha256="abc"), "sha256"),
        (lambda t: t["release"].update(format="rpm"), "format"),
        (lambda t: t["release"]["members"][0].update(name="../evil"), "plain file name"),
        (lambda t: t["build"].update(require=["example.com/fake"]), "module@vVERSION"),
        (lambda t: t["build"].update(replace=["a b"]), "=>"),
        (lambda t: t.pop("version"), "missing key 'version'"),
        (lambda t: t.update(version=3), "expected str"),
    ],
)
def test_invalid_tool_tables_are_rejected(mutate: object, message: str) -> None:
    table = tool_table()
    mutate(table)  # type: ignore[operator]
    with pytest.raises(PinError, match=message):
        make_pins(fake=table)


def test_goproxy_with_direct_fallback_is_rejected() -> None:
    data = pins_data()
    data["settings"]["goproxy"] = "https://proxy.example.invalid,direct"
    with pytest.raises(PinError, match="direct"):
        parse_pins(data)


def test_real_sha256_is_normalised_and_counts_as_pinned() -> None:
    sha = "AB" * 32
    pin = make_pins(fake=with_release(tool_table(), sha256=sha)).tool("fake")
    assert pin.release.sha256 == sha.lower()
    assert pin.release.sha256_pinned


def test_load_pins_reports_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "versions.toml"
    bad.write_text("[tools\n", encoding="utf-8")
    with pytest.raises(PinError, match="not valid TOML"):
        load_pins(bad)
    with pytest.raises(PinError, match="does not exist"):
        load_pins(tmp_path / "missing.toml")


def test_unavailable_reason_is_kept_on_one_line() -> None:
    table = copy.deepcopy(tool_table())
    table["build"]["unavailable"] = "not served\n   by the proxy"
    pin = make_pins(fake=table).tool("fake")
    assert pin.build.unavailable == "not served by the proxy"
