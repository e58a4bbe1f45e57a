"""Per-architecture release pins: ``[tools.NAME.release.arm64]`` beside the amd64 release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.toolchain.helpers import make_pins, tool_table
from tests.toolchain.test_versions import OLD, old_version, with_versions
from toolchain.errors import PinError, UnavailableError
from toolchain.pins import ARCHITECTURES, PINS_FILE, SHA256_PLACEHOLDER, VERSIONS_ENV, ToolPin, load_pins

MACHINE_TOOLS = ("consul", "nomad", "consul-template", "cadvisor")
CONTROLLER_TOOLS = ("pulumi", "pulumi-resource-command")
#: linux_arm64 sha256 values on record (HashiCorp's Homebrew tap; OpenStack Kolla for cAdvisor).
KNOWN_ARM64_SHA256 = {
    ("nomad", "1.6.3"): "1b85902b62fcaf992c98f6c3970742608c919d2d2e8db59933702859600b866e",
    ("nomad", "1.6.2"): "799c2af0366bf37edfe5b63f068e02b22394cb1406c2cf8150b484cce8c799f7",
    ("consul-template", "0.42.1"): "125afde2fef95fef6e65eb596120e9b45edc9f76f78d001438974f1121abdfaa",
    ("cadvisor", "0.49.1"): "c535f46d789599f25c7c680af193d4402da27a98d9828eb2ec916af6256e0c0c",
}
ARM64_SHA = "cd" * 32


def arm64_table(**release: Any) -> dict[str, Any]:
    """The ``fake`` tool with a ``release.arm64`` table (its keys replaced by ``release``)."""
    table = tool_table()
    table["release"]["arm64"] = {
        "url": "http://127.0.0.1:1/fake_{version}_arm64.tar.gz",
        "sha256": ARM64_SHA,
        **release,
    }
    return table


# --- the project's pins ----------------------------------------------------------------------


def test_architectures_are_amd64_first_then_arm64() -> None:
    assert ARCHITECTURES == ("amd64", "arm64")


@pytest.mark.parametrize("name", MACHINE_TOOLS)
def test_machine_tools_pin_the_vendors_arm64_artefact(name: str) -> None:
    pins = load_pins()
    for version in pins.versions(name):
        pin = pins.tool(name, version)
        assert pin.architectures == ("amd64", "arm64")
        amd64, arm64 = pin.release_for("amd64"), pin.release_for("arm64")
        assert amd64 is pin.release
        url = pin.expand(arm64.url)
        assert url.startswith("https://") and version in url, url
        assert url == pin.expand(amd64.url).replace("linux_amd64", "linux_arm64").replace(
            "linux-amd64", "linux-arm64"
        )
        assert arm64.format == amd64.format
        assert not arm64.sha256_pinned or arm64.sha256 != amd64.sha256
        assert arm64.sha256 == KNOWN_ARM64_SHA256.get((name, version), SHA256_PLACEHOLDER), pin.spec
        if not arm64.sha256_pinned:
            assert pin.expand(arm64.checksums_url) == pin.expand(amd64.checksums_url)
            assert pin.expand(arm64.checksums_url).endswith(f"/{name}_{version}_SHA256SUMS")


def test_cadvisors_arm64_member_is_the_arm64_binary() -> None:
    pin = load_pins().tool("cadvisor")
    [member] = pin.release_for("arm64").members
    assert (pin.expand(member.path), member.name) == ("cadvisor-v0.49.1-linux-arm64", "cadvisor")


@pytest.mark.parametrize("name", CONTROLLER_TOOLS)
def test_controller_tools_are_amd64_only(name: str) -> None:
    pin = load_pins().tool(name)
    assert pin.architectures == ("amd64",)
    with pytest.raises(PinError, match=rf"{name} is pinned for linux_amd64 only: .*release\.arm64\]"):
        pin.release_for("arm64")
    with pytest.raises(PinError, match="linux_amd64 only"):
        pin.for_arch("arm64")


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(PinError, match="unknown architecture 'riscv64': the toolchain knows amd64, arm64"):
        load_pins().tool("nomad").release_for("riscv64")


def test_a_sites_pin_file_without_arm64_tables_still_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's copy of an older versions.toml (no arch tables): its tools are amd64 only."""
    lines, skipping = [], False
    for line in PINS_FILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            skipping = ".release.arm64]" in line
        if not skipping:
            lines.append(line)
    site = tmp_path / "versions.toml"
    site.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv(VERSIONS_ENV, str(site))
    pins = load_pins()
    assert [p.architectures for p in pins.all_pins()] == [("amd64",)] * len(pins.all_pins())
    assert pins.tool("nomad").release == load_pins(PINS_FILE).tool("nomad").release


# --- parsing ---------------------------------------------------------------------------------


def test_arm64_table_names_url_and_sha256_and_inherits_the_rest() -> None:
    table = arm64_table()
    table["release"]["checksums_url"] = "http://127.0.0.1:1/SUMS"
    pin = make_pins(fake=table).tool("fake")
    arm64 = pin.release_for("arm64")
    assert (arm64.url, arm64.sha256) == ("http://127.0.0.1:1/fake_{version}_arm64.tar.gz", ARM64_SHA)
    assert (arm64.format, arm64.members, arm64.checksums_url) == (
        pin.release.format, pin.release.members, "http://127.0.0.1:1/SUMS"
    )
    assert pin.release.sha256 == SHA256_PLACEHOLDER, "the amd64 release keeps its own keys"


def test_arm64_table_may_set_its_own_format_and_members() -> None:
    table = arm64_table(format="binary", members=[{"path": "fake-arm64", "name": "fake"}])
    arm64 = make_pins(fake=table).tool("fake").release_for("arm64")
    assert arm64.format == "binary"
    assert [(m.path, m.name) for m in arm64.members] == [("fake-arm64", "fake")]


@pytest.mark.parametrize("key", ["url", "sha256"])
def test_arm64_table_must_name_its_own_url_and_sha256(key: str) -> None:
    table = arm64_table()
    del table["release"]["arm64"][key]
    with pytest.raises(PinError, match=rf"tools\.fake\.release\.arm64: missing key '{key}'"):
        make_pins(fake=table)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(arm={"url": "x", "sha256": "TODO"}), r"release\.arm: only arm64 may be"),
        (lambda r: r.update(amd64={"url": "x", "sha256": "TODO"}), r"release\.amd64: only arm64 may be"),
        (lambda r: r.update(arm64="https://x"), r"release\.arm64: expected a table"),
        (lambda r: r["arm64"].update(sha256="abc"), r"release\.arm64\.sha256: 'abc' is neither"),
        (lambda r: r["arm64"].update(format="rpm"), r"release\.arm64\.format"),
        (lambda r: r["arm64"].update(members=[{"path": "x", "name": "other"}]),
         r"'fake' is not among the release\.arm64 members"),
    ],
)
def test_invalid_arm64_tables_are_rejected(mutate: Any, message: str) -> None:
    table = arm64_table()
    mutate(table["release"])
    with pytest.raises(PinError, match=message):
        make_pins(fake=table)


def test_unavailable_arm64_release_is_refused_with_its_reason() -> None:
    table = tool_table()
    table["release"]["arm64"] = {"unavailable": "no official\n  checksum on record"}
    pin = make_pins(fake=table).tool("fake")
    assert pin.architectures == ("amd64", "arm64"), "arm64 stays buildable"
    assert pin.for_arch("arm64").arch == "arm64"
    with pytest.raises(UnavailableError, match=(
        r"fake 1\.0\.0: no official linux_arm64 release can be installed: no official checksum on "
        r"record; use --source build"
    )):
        pin.release_for("arm64")


def test_for_arch_changes_only_the_architecture() -> None:
    pin = make_pins(fake=arm64_table()).tool("fake")
    arm = pin.for_arch("arm64")
    assert (pin.arch, arm.arch, arm.platform) == ("amd64", "arm64", "linux_arm64")
    assert (arm.name, arm.version, arm.release, arm.build) == (pin.name, pin.version, pin.release, pin.build)
    assert arm.ensure_command == "python3 -m toolchain ensure fake --arch arm64"
    assert pin.ensure_command == "python3 -m toolchain ensure fake"


# --- extra versions --------------------------------------------------------------------------


def extra_pin(table: dict[str, Any], release: dict[str, Any] | None = None) -> ToolPin:
    """The ``fake@0.9.0`` pin of ``table``, with ``release`` as its release override."""
    override = old_version(release=release) if release is not None else old_version()
    return make_pins(fake=with_versions(table, **{OLD: override})).tool("fake", OLD)


def test_extra_version_merges_its_arm64_table_key_by_key() -> None:
    own = "ef" * 32
    pin = extra_pin(arm64_table(), {"arm64": {"sha256": own}})
    arm64 = pin.release_for("arm64")
    assert arm64.sha256 == own
    assert pin.expand(arm64.url) == "http://127.0.0.1:1/fake_0.9.0_arm64.tar.gz"


def test_extra_version_must_not_inherit_a_pinned_arm64_sha256() -> None:
    with pytest.raises(PinError, match=(
        r'versions\."0\.9\.0"\.release\.arm64\.sha256: not set, so it would inherit 1\.0\.0\'s '
        r"linux_arm64 sha256; pin this version's own value"
    )):
        extra_pin(arm64_table(), {"sha256": "ab" * 32})


def test_extra_version_may_say_its_arm64_release_is_unavailable() -> None:
    pin = extra_pin(arm64_table(), {"arm64": {"unavailable": "no sha256 on record"}})
    reason = r"fake 0\.9\.0: no official linux_arm64 release can be installed: no sha256 on record"
    with pytest.raises(UnavailableError, match=reason):
        pin.release_for("arm64")
    assert make_pins(fake=arm64_table()).tool("fake").release_for("arm64").sha256 == ARM64_SHA


def test_extra_version_inherits_a_placeholder_arm64_sha256_and_its_checksum_list() -> None:
    table = arm64_table(sha256="TODO", checksums_url="http://127.0.0.1:1/{version}/SUMS")
    arm64 = extra_pin(table).release_for("arm64")
    assert (arm64.sha256, arm64.checksums_url) == (SHA256_PLACEHOLDER, "http://127.0.0.1:1/{version}/SUMS")
