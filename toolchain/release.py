"""Install a tool from its official release artefact: download, verify sha256, unpack."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from toolchain.errors import ChecksumError, ToolchainError
from toolchain.manifest import sha256_file
from toolchain.pins import ReleaseRecipe, ToolPin

_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_TIMEOUT_S = 60


def artefact_url(pin: ToolPin) -> str:
    """The release URL with the version filled in."""
    return pin.expand(pin.release.url)


def require_pinned_sha256(pin: ToolPin) -> str:
    """Return the pinned sha256, or refuse when only the placeholder is there."""
    if not pin.release.sha256_pinned:
        raise ChecksumError(
            f"{pin.name} {pin.version}: no sha256 is pinned for the release artefact "
            f"({artefact_url(pin)}); fill in tools.{pin.name}.release.sha256 in "
            "toolchain/versions.toml, or use --source build"
        )
    return pin.release.sha256


def expected_sha256(pin: ToolPin) -> tuple[str, str]:
    """The sha256 the artefact must have, and where it came from.

    A pinned value wins. Without one, the vendor's checksum list for the release
    (``checksums_url``, fetched over HTTPS from the vendor) names it.
    """
    if pin.release.sha256_pinned or not pin.release.checksums_url:
        return require_pinned_sha256(pin), "versions.toml"
    url = pin.expand(pin.release.checksums_url)
    name = artefact_url(pin).rstrip("/").rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            text = resp.read(1 << 20).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ToolchainError(
            f"{pin.name} {pin.version}: cannot read the vendor's checksums {url}: {exc}; "
            "check the network, or use --source build"
        ) from None
    return checksum_for(text, name, url), url


def checksum_for(checksums: str, filename: str, where: str) -> str:
    """The sha256 that a `HASH  FILENAME` checksum list gives for ``filename``."""
    for line in checksums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename and _SHA256.match(parts[0].lower()):
            return parts[0].lower()
    raise ChecksumError(f"{where} lists no sha256 for {filename}; the release is not the one pinned")


def download(url: str, dest: Path, expected: str) -> None:
    """Stream ``url`` into ``dest`` and refuse (deleting it) unless it hashes as expected."""
    digest = hashlib.sha256()
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, part.open("wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise ToolchainError(
            f"download of {url} failed: {exc}; check the network, or use --source build"
        ) from None
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"refusing {url}: its sha256 is {actual}, but versions.toml pins "
            f"{expected}; the download is corrupt or the pin is wrong"
        )
    os.replace(part, dest)


def fetch_artefact(pin: ToolPin, downloads: Path, expected: str | None = None) -> Path:
    """Return a verified local copy of the tool's artefact, downloading it if needed.

    Verified artefacts are kept under ``downloads/<sha256>-<name>``; a kept copy is
    re-hashed before it is reused.
    """
    if expected is None:
        expected, _ = expected_sha256(pin)
    url = artefact_url(pin)
    name = url.rstrip("/").rsplit("/", 1)[-1] or "artefact"
    dest = downloads / f"{expected}-{name}"
    if dest.is_file() and sha256_file(dest) == expected:
        return dest
    downloads.mkdir(parents=True, exist_ok=True)
    download(url, dest, expected)
    return dest


def unpack(pin: ToolPin, artefact: Path, bin_dir: Path) -> list[str]:
    """Copy the pinned members of ``artefact`` into ``bin_dir`` (mode 0755).

    Only the named members are read, so archive paths cannot escape ``bin_dir``.
    Returns the names installed, in pin order; a missing required member is an error.
    """
    recipe: ReleaseRecipe = pin.release
    bin_dir.mkdir(parents=True, exist_ok=True)
    installed: list[str] = []
    for member in recipe.members:
        member_path = pin.expand(member.path)
        target = bin_dir / member.name
        found = _extract_member(recipe.format, artefact, member_path, target)
        if not found:
            if member.optional:
                continue
            raise ToolchainError(
                f"{pin.name} {pin.version}: the release artefact {artefact.name} has no "
                f"{member_path!r}; fix tools.{pin.name}.release.members in versions.toml"
            )
        target.chmod(0o755)
        installed.append(member.name)
    return installed


def _extract_member(fmt: str, artefact: Path, member_path: str, target: Path) -> bool:
    """Write one archive member to ``target``; False if the archive lacks it."""
    if fmt == "binary":
        shutil.copyfile(artefact, target)
        return True
    if fmt == "zip":
        return _extract_zip_member(artefact, member_path, target)
    if fmt == "tar.gz":
        return _extract_tar_member(artefact, member_path, target)
    raise ToolchainError(f"unknown release format {fmt!r}")


def _extract_zip_member(artefact: Path, member_path: str, target: Path) -> bool:
    """Copy one regular file out of a zip archive."""
    with zipfile.ZipFile(artefact) as zf:
        try:
            info = zf.getinfo(member_path)
        except KeyError:
            return False
        if info.is_dir():
            return False
        with zf.open(info) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out)
    return True


def _extract_tar_member(artefact: Path, member_path: str, target: Path) -> bool:
    """Copy one regular file out of a gzipped tar archive (``./`` prefix tolerated)."""
    with tarfile.open(artefact, "r:gz") as tf:
        info = None
        for candidate in (member_path, "./" + member_path):
            try:
                info = tf.getmember(candidate)
                break
            except KeyError:
                continue
        if info is None or not info.isfile():
            return False
        src = tf.extractfile(info)
        if src is None:
            return False
        with src, target.open("wb") as out:
            shutil.copyfileobj(src, out)
    return True


def install_release(pin: ToolPin, downloads: Path, stage: Path) -> tuple[list[str], dict[str, str]]:
    """Fetch, verify and unpack a tool's release into ``stage/bin``.

    Returns the installed names and details for the manifest.
    """
    sha, source = expected_sha256(pin)
    artefact = fetch_artefact(pin, downloads, sha)
    names = unpack(pin, artefact, stage / "bin")
    return names, {"url": artefact_url(pin), "artefact_sha256": sha, "sha256_source": source}
