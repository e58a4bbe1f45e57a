"""Install a tool from its official release artefact: download, verify sha256, unpack.

Vendor URLs (``https://HOST/PATH``) are fetched as they are, or, with a mirror
(``$HASHICLUSTER_RELEASE_MIRROR=BASE``), as ``BASE/HOST/PATH``: the vendors' own layout under
one base, for artefacts and checksum lists alike. Plain http is refused unless it is the
scheme of an explicit mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from toolchain.errors import ChecksumError, ToolchainError
from toolchain.manifest import sha256_file
from toolchain.pins import DEFAULT_ARCH, ReleaseRecipe, ToolPin, pins_file

_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_TIMEOUT_S = 60
MIRROR_ENV = "HASHICLUSTER_RELEASE_MIRROR"
MIRROR_SCHEMES = ("https", "http", "file")


def recipe(pin: ToolPin) -> ReleaseRecipe:
    """The release of the pin's architecture (UnavailableError/PinError when there is none)."""
    return pin.release_for(pin.arch)


def artefact_url(pin: ToolPin) -> str:
    """The vendor's URL of the release artefact, with the version filled in."""
    return pin.expand(recipe(pin).url)


def artefact_name(pin: ToolPin) -> str:
    """The artefact's file name: the last part of its URL."""
    return artefact_url(pin).rstrip("/").rsplit("/", 1)[-1] or "artefact"


def sha256_key(pin: ToolPin) -> str:
    """Where the pin file keeps this version's release sha256, e.g. ``tools.nomad.release.sha256``
    (``tools.nomad.release.arm64.sha256`` for arm64)."""
    table = f"tools.{pin.name}" if pin.is_default else f'tools.{pin.name}.versions."{pin.version}"'
    arch = "" if pin.arch == DEFAULT_ARCH else f".{pin.arch}"
    return f"{table}.release{arch}.sha256"


def mirror_base() -> str:
    """The mirror base URL from $HASHICLUSTER_RELEASE_MIRROR ("" when unset), checked."""
    base = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if not base:
        return ""
    parts = urllib.parse.urlsplit(base)
    where = parts.path if parts.scheme == "file" else parts.netloc
    if parts.scheme not in MIRROR_SCHEMES or not where or parts.query or parts.fragment:
        raise ToolchainError(
            f"{MIRROR_ENV}={base!r} is not a mirror base URL; set it to an https://, http:// or "
            "file:// URL under which each vendor URL https://HOST/PATH is served as BASE/HOST/PATH "
            "(e.g. http://mirror.internal:8080/vendors), or unset it to download from the vendors"
        )
    return base


@dataclass(frozen=True)
class Source:
    """A vendor URL, and the mirror base it is fetched through ("" for the vendor itself)."""

    vendor_url: str
    mirror: str = ""

    @property
    def url(self) -> str:
        """The URL actually fetched: ``MIRROR/HOST/PATH``, or the vendor URL."""
        return f"{self.mirror}/{self.mirror_path}" if self.mirror else self.vendor_url

    @property
    def mirror_path(self) -> str:
        """``HOST/PATH`` of the vendor URL: where a mirror keeps its copy."""
        parts = urllib.parse.urlsplit(self.vendor_url)
        return parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")

    def describe(self) -> str:
        """The vendor URL, and the mirror's copy of it when there is one."""
        if self.mirror:
            return f"{self.vendor_url} (fetched from the mirror as {self.url})"
        return self.vendor_url

    def fix(self) -> str:
        """What to do when fetching it failed."""
        if self.mirror:
            return (f"check that the mirror {MIRROR_ENV}={self.mirror} serves {self.mirror_path}, "
                    "or unset it to download from the vendor")
        return (f"check the network; without access to the vendor, set {MIRROR_ENV} to a mirror "
                "of the vendors' downloads, or use --source build")


def source_of(vendor_url: str) -> Source:
    """Where to fetch a vendor URL from: the mirror when one is set, else the URL itself.

    https and http URLs map to BASE/HOST/PATH under a mirror; file:// URLs are local and are
    read as they are. Without a mirror only https (and file://) is accepted.
    """
    parts = urllib.parse.urlsplit(vendor_url)
    if parts.scheme == "file":
        return Source(vendor_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ToolchainError(
            f"{vendor_url} is not an https:// or file:// URL; fix the release URLs in {pins_file()}"
        )
    base = mirror_base()
    if base:
        return Source(vendor_url, base)
    if parts.scheme != "https":
        raise ToolchainError(
            f"refusing plain http for {vendor_url}: use its https:// URL in {pins_file()}, or set "
            f"{MIRROR_ENV} to a mirror you trust (plain http is allowed only for an explicit mirror)"
        )
    return Source(vendor_url)


class _NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, except from https to anything else."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: http.client.HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:
        """Refuse an https URL that redirects to plain http (or any other scheme)."""
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise urllib.error.URLError(f"refusing the redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngradeRedirects)


def open_url(url: str) -> IO[bytes]:
    """Open a URL for reading (redirects followed, never from https down to http)."""
    response: IO[bytes] = _OPENER.open(url, timeout=DOWNLOAD_TIMEOUT_S)
    return response


def require_pinned_sha256(pin: ToolPin) -> str:
    """Return the pinned sha256, or refuse when only the placeholder is there."""
    if not recipe(pin).sha256_pinned:
        raise ChecksumError(
            f"{pin.name} {pin.version}: nothing to verify its release artefact "
            f"({artefact_url(pin)}) against: pin its sha256 ({sha256_key(pin)}) or name the "
            f"vendor's checksum list (checksums_url beside it) in {pins_file()}, or use --source build"
        )
    return recipe(pin).sha256


def expected_sha256(pin: ToolPin) -> tuple[str, str]:
    """The sha256 the artefact must have, and where it came from.

    A pinned value wins. Without one, the vendor's checksum list for the release
    (``checksums_url``, from the vendor over https or from the mirror) names it.
    """
    release = recipe(pin)
    if release.sha256_pinned or not release.checksums_url:
        return require_pinned_sha256(pin), f"{sha256_key(pin)} in {pins_file()}"
    source = source_of(pin.expand(release.checksums_url))
    try:
        with open_url(source.url) as resp:
            text = resp.read(1 << 20).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ToolchainError(
            f"{pin.name} {pin.version}: cannot read the vendor's checksum list "
            f"{source.describe()}: {exc}; {source.fix()}"
        ) from None
    return checksum_for(text, artefact_name(pin), source.describe()), source.describe()


def checksum_for(checksums: str, filename: str, where: str) -> str:
    """The sha256 that a `HASH  FILENAME` checksum list gives for ``filename``."""
    for line in checksums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename and _SHA256.match(parts[0].lower()):
            return parts[0].lower()
    raise ChecksumError(
        f"{where} lists no sha256 for {filename}; the release is not the one pinned (or the "
        "checksum list is not the vendor's): check the version and checksums_url in the pin file"
    )


def download(pin: ToolPin, source: Source, dest: Path, expected: str, expected_from: str) -> None:
    """Stream ``source`` into ``dest`` and refuse (deleting it) unless it hashes as expected."""
    digest = hashlib.sha256()
    part = dest.with_name(dest.name + ".part")
    try:
        with open_url(source.url) as resp, part.open("wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise ToolchainError(
            f"{pin.name} {pin.version}: download of {source.describe()} failed: {exc}; {source.fix()}"
        ) from None
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{pin.name} {pin.version}: refusing {source.describe()}: its sha256 is {actual}, "
            f"expected {expected} (from {expected_from}); nothing of it was installed. The download "
            "is corrupt or was tampered with, or the pin is wrong: fetch it again from a source "
            "you trust, or fix the pin"
        )
    os.replace(part, dest)


def fetch_artefact(
    pin: ToolPin, downloads: Path, expected: str | None = None, expected_from: str = ""
) -> Path:
    """Return a verified local copy of the tool's artefact, downloading it if needed.

    Verified artefacts are kept under ``downloads/<sha256>-<name>``; a kept copy is
    re-hashed before it is reused.
    """
    if expected is None:
        expected, expected_from = expected_sha256(pin)
    dest = downloads / f"{expected}-{artefact_name(pin)}"
    if dest.is_file() and sha256_file(dest) == expected:
        return dest
    source = source_of(artefact_url(pin))
    downloads.mkdir(parents=True, exist_ok=True)
    download(pin, source, dest, expected, expected_from)
    return dest


def unpack(pin: ToolPin, artefact: Path, bin_dir: Path) -> list[str]:
    """Copy the pinned members of ``artefact`` into ``bin_dir`` (mode 0755).

    Only the named members are read, so archive paths cannot escape ``bin_dir``.
    Returns the names installed, in pin order; a missing required member is an error.
    """
    release = recipe(pin)
    bin_dir.mkdir(parents=True, exist_ok=True)
    installed: list[str] = []
    for member in release.members:
        member_path = pin.expand(member.path)
        target = bin_dir / member.name
        found = _extract_member(release.format, artefact, member_path, target)
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
    sha, sha_from = expected_sha256(pin)
    artefact = fetch_artefact(pin, downloads, sha, sha_from)
    names = unpack(pin, artefact, stage / "bin")
    details = {"url": artefact_url(pin), "artefact_sha256": sha, "sha256_source": sha_from}
    source = source_of(artefact_url(pin))
    if source.mirror:
        details["fetched_from"] = source.url
    return names, details
