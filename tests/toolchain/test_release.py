"""Release path: download from 127.0.0.1 / file://, verify sha256, unpack, install."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.toolchain.helpers import (
    FAKE_BINARY,
    make_pins,
    sha256,
    tar_gz,
    tool_table,
    with_release,
    write,
    zip_bytes,
)
from toolchain import release
from toolchain.ensure import ensure
from toolchain.errors import ChecksumError, ToolchainError
from toolchain.manifest import read_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins


def served_pins(root: Path, base: str, data: bytes, name: str, fmt: str, **extra: object) -> Pins:
    """Pins whose ``fake`` release is ``data`` served as ``base/name``."""
    write(root / name, data)
    table = with_release(tool_table(), url=f"{base}/{name}", sha256=sha256(data), format=fmt, **extra)
    return make_pins(fake=table)


def test_release_tar_gz_is_downloaded_verified_and_installed(
    layout: Layout, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    data = tar_gz({"fake": FAKE_BINARY, "README": b"docs"})
    pins = served_pins(root, base, data, "fake_1.0.0.tar.gz", "tar.gz")
    out = io.StringIO()
    [outcome] = ensure(layout, pins, ["fake"], "release", stream=out)
    assert outcome.action == "downloaded", out.getvalue()
    installed = layout.bin_dir("fake", "1.0.0") / "fake"
    assert installed.read_bytes() == FAKE_BINARY
    assert installed.stat().st_mode & 0o111
    assert not (layout.bin_dir("fake", "1.0.0") / "README").exists()
    manifest = read_manifest(layout.tool_dir("fake", "1.0.0"))
    assert manifest is not None and manifest.source == "release"
    entry = manifest.file("fake")
    assert entry is not None and entry.sha256 == sha256(FAKE_BINARY)
    sums = (layout.tool_dir("fake", "1.0.0") / "SHA256SUMS").read_text()
    assert sums == f"{sha256(FAKE_BINARY)}  bin/fake\n"
    assert "downloading" in out.getvalue()


def test_release_zip_with_version_in_url(layout: Layout, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    data = zip_bytes({"fake": FAKE_BINARY})
    write(root / "fake_1.0.0_linux_amd64.zip", data)
    table = with_release(
        tool_table(), url=base + "/fake_{version}_linux_amd64.zip", sha256=sha256(data), format="zip"
    )
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    assert (layout.bin_dir("fake", "1.0.0") / "fake").read_bytes() == FAKE_BINARY


def test_release_raw_binary_from_file_url(layout: Layout, tmp_path: Path) -> None:
    artefact = write(tmp_path / "fake-v1.0.0-linux-amd64", FAKE_BINARY)
    table = with_release(
        tool_table(),
        url=artefact.as_uri(),
        sha256=sha256(FAKE_BINARY),
        format="binary",
        members=[{"path": "fake-v{version}-linux-amd64", "name": "fake"}],
    )
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    assert (layout.bin_dir("fake", "1.0.0") / "fake").read_bytes() == FAKE_BINARY


def test_sha256_mismatch_is_refused_and_nothing_is_installed(
    layout: Layout, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    write(root / "fake.tar.gz", tar_gz({"fake": b"tampered"}))
    good = sha256(tar_gz({"fake": FAKE_BINARY}))
    table = with_release(tool_table(), url=f"{base}/fake.tar.gz", sha256=good)
    out = io.StringIO()
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=out)
    assert outcome.action == "failed"
    assert "refusing" in outcome.error and good in outcome.error
    assert not layout.tool_dir("fake", "1.0.0").exists()
    assert list(layout.downloads.iterdir()) == []


def test_placeholder_sha256_refuses_without_downloading(
    layout: Layout, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `go` to fall back on
    root, base = http_root
    write(root / "fake.tar.gz", tar_gz({"fake": FAKE_BINARY}))
    pins = make_pins(fake=with_release(tool_table(), url=f"{base}/fake.tar.gz", sha256="TODO"))
    with pytest.raises(ChecksumError, match=r"no sha256 is pinned .*--source build"):
        release.fetch_artefact(pins.tool("fake"), layout.downloads)
    [outcome] = ensure(layout, pins, ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed" and "tools.fake.release.sha256" in outcome.error


def test_missing_member_is_an_error_but_optional_ones_are_skipped(
    layout: Layout, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    data = tar_gz({"./fake": FAKE_BINARY})
    members = [{"path": "fake", "name": "fake"}, {"path": "x", "name": "x", "optional": True}]
    pins = served_pins(root, base, data, "a.tar.gz", "tar.gz", members=members)
    [outcome] = ensure(layout, pins, ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    assert not (layout.bin_dir("fake", "1.0.0") / "x").exists()

    members = [{"path": "fake", "name": "fake"}, {"path": "y", "name": "y"}]
    pins = served_pins(root, base, data, "b.tar.gz", "tar.gz", members=members)
    with pytest.raises(ToolchainError, match="has no 'y'"):
        release.install_release(pins.tool("fake"), layout.downloads, _stage(layout))


def test_unreachable_url_fails_cleanly(layout: Layout, tmp_path: Path) -> None:
    table = with_release(tool_table(), url=(tmp_path / "nope").as_uri(), sha256="a" * 64)
    with pytest.raises(ToolchainError, match=r"download of .* failed"):
        release.fetch_artefact(make_pins(fake=table).tool("fake"), layout.downloads)


def test_verified_download_is_reused(layout: Layout, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    data = tar_gz({"fake": FAKE_BINARY})
    pins = served_pins(root, base, data, "fake.tar.gz", "tar.gz")
    first = release.fetch_artefact(pins.tool("fake"), layout.downloads)
    (root / "fake.tar.gz").unlink()
    assert release.fetch_artefact(pins.tool("fake"), layout.downloads) == first


def _stage(layout: Layout) -> Path:
    """A fresh staging dir."""
    layout.ensure_dirs()
    stage = layout.tmp / "stage"
    stage.mkdir()
    return stage


def test_release_checked_against_the_vendors_checksums_file(
    layout: Layout, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    data = zip_bytes({"fake": FAKE_BINARY})
    write(root / "fake_1.0.0.zip", data)
    write(root / "SUMS", f"{'0' * 64}  other.zip\n{sha256(data)}  fake_1.0.0.zip\n".encode())
    table = with_release(tool_table(), url=f"{base}/fake_{{version}}.zip", sha256="TODO",
                         format="zip", checksums_url=f"{base}/SUMS")
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    manifest_text = (layout.tool_dir("fake", "1.0.0") / "manifest.json").read_text()
    assert f"{base}/SUMS" in manifest_text


def test_release_refused_when_the_checksums_file_disagrees(
    layout: Layout, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    write(root / "fake_1.0.0.zip", zip_bytes({"fake": FAKE_BINARY}))
    write(root / "SUMS", f"{'a' * 64}  fake_1.0.0.zip\n".encode())
    table = with_release(tool_table(), url=f"{base}/fake_{{version}}.zip", sha256="TODO",
                         format="zip", checksums_url=f"{base}/SUMS")
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed" and "refusing" in outcome.error and "a" * 64 in outcome.error
    assert not (layout.bin_dir("fake", "1.0.0") / "fake").exists()


def test_checksum_for_names_a_missing_file() -> None:
    with pytest.raises(ChecksumError, match=r"lists no sha256 for b\.zip"):
        release.checksum_for(f"{'1' * 64}  a.zip\n", "b.zip", "SUMS")
