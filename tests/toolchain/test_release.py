"""Release path: download from a 127.0.0.1 mirror / file://, verify sha256, unpack, install."""

from __future__ import annotations

import http.client
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.toolchain.conftest import Mirror
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

VENDOR = "https://vendor.example/fake/1.0.0"


def served_pins(mirror: Mirror, data: bytes, name: str, fmt: str, **extra: object) -> Pins:
    """Pins whose ``fake`` release is ``data``, published by the mirror as ``VENDOR/name``."""
    url = mirror.publish(f"{VENDOR}/{name}", data)
    table = with_release(tool_table(), url=url, sha256=sha256(data), format=fmt, **extra)
    return make_pins(fake=table)


def test_release_tar_gz_is_downloaded_verified_and_installed(layout: Layout, mirror: Mirror) -> None:
    data = tar_gz({"fake": FAKE_BINARY, "README": b"docs"})
    pins = served_pins(mirror, data, "fake_1.0.0.tar.gz", "tar.gz")
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
    assert manifest.details["url"] == f"{VENDOR}/fake_1.0.0.tar.gz"
    assert manifest.details["fetched_from"] == f"{mirror.base}/vendor.example/fake/1.0.0/fake_1.0.0.tar.gz"
    assert manifest.details["sha256_source"].startswith("tools.fake.release.sha256 in ")
    sums = (layout.tool_dir("fake", "1.0.0") / "SHA256SUMS").read_text()
    assert sums == f"{sha256(FAKE_BINARY)}  bin/fake\n"
    assert "downloading" in out.getvalue()


def test_release_zip_with_version_in_url(layout: Layout, mirror: Mirror) -> None:
    data = zip_bytes({"fake": FAKE_BINARY})
    mirror.publish(f"{VENDOR}/fake_1.0.0_linux_amd64.zip", data)
    table = with_release(
        tool_table(), url="https://vendor.example/fake/{version}/fake_{version}_linux_amd64.zip",
        sha256=sha256(data), format="zip",
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


def test_sha256_mismatch_is_refused_and_nothing_is_installed(layout: Layout, mirror: Mirror) -> None:
    tampered = tar_gz({"fake": b"tampered"})
    url = mirror.publish(f"{VENDOR}/fake.tar.gz", tampered)
    good = sha256(tar_gz({"fake": FAKE_BINARY}))
    table = with_release(tool_table(), url=url, sha256=good)
    out = io.StringIO()
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=out)
    assert outcome.action == "failed"
    assert outcome.error.startswith(f"fake 1.0.0: refusing {url} (fetched from the mirror as {mirror.base}/")
    expected = f"its sha256 is {sha256(tampered)}, expected {good} (from tools.fake.release.sha256"
    assert expected in outcome.error
    assert not layout.tool_dir("fake", "1.0.0").exists()
    assert list(layout.downloads.iterdir()) == []
    assert list(layout.tmp.iterdir()) == []


def test_placeholder_sha256_without_a_checksum_list_refuses_without_downloading(
    layout: Layout, mirror: Mirror
) -> None:
    url = mirror.publish(f"{VENDOR}/fake.tar.gz", tar_gz({"fake": FAKE_BINARY}))
    pins = make_pins(fake=with_release(tool_table(), url=url, sha256="TODO"))
    with pytest.raises(ChecksumError, match=r"nothing to verify .*checksums_url.*--source build"):
        release.fetch_artefact(pins.tool("fake"), layout.downloads)
    [outcome] = ensure(layout, pins, ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed" and "tools.fake.release.sha256" in outcome.error
    assert not layout.downloads.exists() or list(layout.downloads.iterdir()) == []


def test_missing_member_is_an_error_but_optional_ones_are_skipped(layout: Layout, mirror: Mirror) -> None:
    data = tar_gz({"./fake": FAKE_BINARY})
    members = [{"path": "fake", "name": "fake"}, {"path": "x", "name": "x", "optional": True}]
    pins = served_pins(mirror, data, "a.tar.gz", "tar.gz", members=members)
    [outcome] = ensure(layout, pins, ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded"
    assert not (layout.bin_dir("fake", "1.0.0") / "x").exists()

    members = [{"path": "fake", "name": "fake"}, {"path": "y", "name": "y"}]
    pins = served_pins(mirror, data, "b.tar.gz", "tar.gz", members=members)
    with pytest.raises(ToolchainError, match="has no 'y'"):
        release.install_release(pins.tool("fake"), layout.downloads, _stage(layout))


def test_unreachable_url_fails_cleanly(layout: Layout, tmp_path: Path) -> None:
    table = with_release(tool_table(), url=(tmp_path / "nope").as_uri(), sha256="a" * 64)
    with pytest.raises(ToolchainError, match=r"download of .* failed"):
        release.fetch_artefact(make_pins(fake=table).tool("fake"), layout.downloads)


def test_verified_download_is_reused(layout: Layout, mirror: Mirror) -> None:
    data = tar_gz({"fake": FAKE_BINARY})
    pins = served_pins(mirror, data, "fake.tar.gz", "tar.gz")
    first = release.fetch_artefact(pins.tool("fake"), layout.downloads)
    mirror.path_of(f"{VENDOR}/fake.tar.gz").unlink()
    assert release.fetch_artefact(pins.tool("fake"), layout.downloads) == first


def _stage(layout: Layout) -> Path:
    """A fresh staging dir."""
    layout.ensure_dirs()
    stage = layout.tmp / "stage"
    stage.mkdir()
    return stage


def test_release_checked_against_the_vendors_checksums_file(layout: Layout, mirror: Mirror) -> None:
    data = zip_bytes({"fake": FAKE_BINARY})
    mirror.publish(f"{VENDOR}/fake_1.0.0.zip", data)
    listing = f"{'0' * 64}  other.zip\n{sha256(data)}  fake_1.0.0.zip\n"
    sums = mirror.publish(f"{VENDOR}/SUMS", listing.encode())
    table = with_release(tool_table(), url="https://vendor.example/fake/{version}/fake_{version}.zip",
                         sha256="TODO", format="zip", checksums_url=sums)
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "downloaded", outcome.error
    manifest = json.loads((layout.tool_dir("fake", "1.0.0") / "manifest.json").read_text())
    assert manifest["details"]["sha256_source"] == f"{sums} (fetched from the mirror as {mirror.base}/" \
        "vendor.example/fake/1.0.0/SUMS)"
    assert manifest["details"]["artefact_sha256"] == sha256(data)


def test_release_refused_when_the_checksums_file_disagrees(layout: Layout, mirror: Mirror) -> None:
    data = zip_bytes({"fake": FAKE_BINARY})
    mirror.publish(f"{VENDOR}/fake_1.0.0.zip", data)
    sums = mirror.publish(f"{VENDOR}/SUMS", f"{'a' * 64}  fake_1.0.0.zip\n".encode())
    table = with_release(tool_table(), url=f"{VENDOR}/fake_{{version}}.zip", sha256="TODO",
                         format="zip", checksums_url=sums)
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed" and "refusing" in outcome.error
    assert f"its sha256 is {sha256(data)}, expected {'a' * 64} (from {sums} (fetched from the mirror" \
        in outcome.error
    assert not (layout.bin_dir("fake", "1.0.0") / "fake").exists()


def test_missing_checksum_list_names_the_mirror_and_the_fix(layout: Layout, mirror: Mirror) -> None:
    url = mirror.publish(f"{VENDOR}/fake_1.0.0.zip", zip_bytes({"fake": FAKE_BINARY}))
    table = with_release(tool_table(), url=url, sha256="TODO", format="zip",
                         checksums_url=f"{VENDOR}/SUMS")
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed"
    assert f"cannot read the vendor's checksum list {VENDOR}/SUMS (fetched from the mirror as " \
        f"{mirror.base}/vendor.example/fake/1.0.0/SUMS)" in outcome.error
    assert f"check that the mirror HASHICLUSTER_RELEASE_MIRROR={mirror.base} serves " \
        "vendor.example/fake/1.0.0/SUMS" in outcome.error


def test_checksum_for_names_a_missing_file() -> None:
    with pytest.raises(ChecksumError, match=r"lists no sha256 for b\.zip"):
        release.checksum_for(f"{'1' * 64}  a.zip\n", "b.zip", "SUMS")


# --- mirror and URL rules -----------------------------------------------------------------------


def test_the_mirror_serves_each_vendor_url_under_its_host_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(release.MIRROR_ENV, "http://mirror.internal:8080/vendors/")
    source = release.source_of("https://releases.hashicorp.com/consul/1.14.11/consul_1.14.11_SHA256SUMS")
    assert source.url == "http://mirror.internal:8080/vendors/releases.hashicorp.com/consul/1.14.11/" \
        "consul_1.14.11_SHA256SUMS"
    assert source.vendor_url in source.describe() and source.url in source.describe()
    assert release.source_of("https://h.example/a?b=1").url == "http://mirror.internal:8080/vendors/h.example/a?b=1"
    assert release.source_of("file:///srv/x.zip").url == "file:///srv/x.zip"  # local: not mirrored
    monkeypatch.setenv(release.MIRROR_ENV, "file:///srv/mirror")
    assert release.source_of("https://get.pulumi.com/releases/sdk/p.tar.gz").url == \
        "file:///srv/mirror/get.pulumi.com/releases/sdk/p.tar.gz"


def test_without_a_mirror_vendor_urls_are_fetched_as_they_are() -> None:
    source = release.source_of("https://get.pulumi.com/releases/sdk/p.tar.gz")
    assert source.url == source.vendor_url and source.mirror == ""
    assert "set HASHICLUSTER_RELEASE_MIRROR" in source.fix()


@pytest.mark.parametrize(
    "value", ["mirror.internal:8080", "ftp://mirror.internal/", "http://", "file://", "http://m/x?y=1"]
)
def test_a_malformed_mirror_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(release.MIRROR_ENV, value)
    with pytest.raises(ToolchainError, match=r"_MIRROR=.* is not a mirror base URL; set it"):
        release.source_of("https://get.pulumi.com/x")


def test_plain_http_is_refused_without_a_mirror(layout: Layout, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    data = tar_gz({"fake": FAKE_BINARY})
    write(root / "fake.tar.gz", data)
    table = with_release(tool_table(), url=f"{base}/fake.tar.gz", sha256=sha256(data))
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed"
    assert outcome.error.startswith(f"refusing plain http for {base}/fake.tar.gz: use its https:// URL")
    assert "HASHICLUSTER_RELEASE_MIRROR" in outcome.error
    assert not layout.tool_dir("fake", "1.0.0").exists()


def test_unreachable_vendor_names_the_url_and_the_fix(layout: Layout) -> None:
    url = "https://127.0.0.1:1/fake.tar.gz"  # nothing listens on port 1 of loopback
    table = with_release(tool_table(), url=url, sha256="a" * 64)
    [outcome] = ensure(layout, make_pins(fake=table), ["fake"], "release", stream=io.StringIO())
    assert outcome.action == "failed"
    assert f"fake 1.0.0: download of {url} failed" in outcome.error
    assert "set HASHICLUSTER_RELEASE_MIRROR to a mirror" in outcome.error
    assert "--source build" in outcome.error


def test_a_redirect_from_https_to_plain_http_is_refused() -> None:
    handler = release._NoDowngradeRedirects()
    headers = http.client.HTTPMessage()
    https = urllib.request.Request("https://vendor.example/a")
    with pytest.raises(urllib.error.URLError, match="refusing the redirect from https to http://"):
        handler.redirect_request(https, io.BytesIO(), 302, "Found", headers, "http://cdn.example/a")
    assert handler.redirect_request(https, io.BytesIO(), 302, "Found", headers, "https://cdn.example/a")
    plain = urllib.request.Request("http://mirror.internal/a")  # an explicit http mirror
    assert handler.redirect_request(plain, io.BytesIO(), 302, "Found", headers, "http://mirror.internal/b")
