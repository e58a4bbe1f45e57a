"""Manifests of installed tools: what was installed, from where, and its sha256 sums."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolchain.pins import DEFAULT_ARCH, linux_platform

MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One installed file, relative to the tool dir."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What ``<cache>/toolchain/<tool>/<version>/manifest.json`` holds."""

    tool: str
    version: str
    source: str
    installed_at: str
    files: tuple[FileEntry, ...]
    details: dict[str, Any] = field(default_factory=dict)
    # The architecture of the binaries (manifests written before there was a choice: amd64).
    arch: str = DEFAULT_ARCH

    def file(self, name: str) -> FileEntry | None:
        """The entry for ``bin/<name>``, if any."""
        for entry in self.files:
            if entry.path == f"bin/{name}":
                return entry
        return None

    def to_json(self) -> str:
        """Serialise (stable key order, trailing newline)."""
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse; raises ValueError/KeyError/TypeError on malformed input."""
        data = json.loads(text)
        files = tuple(
            FileEntry(path=str(f["path"]), sha256=str(f["sha256"]), size=int(f["size"]))
            for f in data["files"]
        )
        return cls(
            tool=str(data["tool"]),
            version=str(data["version"]),
            source=str(data["source"]),
            installed_at=str(data["installed_at"]),
            files=files,
            details=dict(data.get("details", {})),
            arch=str(data.get("arch", DEFAULT_ARCH)),
        )


def describe_files(tool_dir: Path, names: list[str]) -> tuple[FileEntry, ...]:
    """Hash ``bin/<name>`` for each name (in order) below a tool dir."""
    entries = []
    for name in names:
        path = tool_dir / "bin" / name
        entries.append(FileEntry(path=f"bin/{name}", sha256=sha256_file(path), size=path.stat().st_size))
    return tuple(entries)


def write_manifest(tool_dir: Path, manifest: Manifest) -> None:
    """Write manifest.json and a ``sha256sum -c``-compatible SHA256SUMS into a tool dir."""
    (tool_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    sums = "".join(f"{f.sha256}  {f.path}\n" for f in manifest.files)
    (tool_dir / SUMS_NAME).write_text(sums, encoding="utf-8")


def read_manifest(tool_dir: Path) -> Manifest | None:
    """Read a tool dir's manifest, or None when it is missing or unreadable."""
    try:
        return Manifest.from_json((tool_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify_install(
    tool_dir: Path, tool: str, version: str, required: list[str], arch: str = DEFAULT_ARCH
) -> str | None:
    """Check an installed tool against its manifest.

    Returns None when the manifest matches ``tool``/``version``/``arch``, lists every required
    binary, and every listed file exists with the recorded size and sha256; otherwise a
    short reason why the install cannot be trusted.
    """
    manifest = read_manifest(tool_dir)
    if manifest is None:
        return "no readable manifest.json"
    if manifest.tool != tool or manifest.version != version:
        return f"manifest is for {manifest.tool} {manifest.version}"
    if manifest.arch != arch:
        return f"manifest is for {linux_platform(manifest.arch)}"
    missing = [name for name in required if manifest.file(name) is None]
    if missing:
        return f"manifest lacks {', '.join(missing)}"
    for entry in manifest.files:
        path = tool_dir / entry.path
        try:
            size = path.stat().st_size
        except OSError:
            return f"{entry.path} is missing"
        if size != entry.size or sha256_file(path) != entry.sha256:
            return f"{entry.path} does not match its recorded sha256"
    return None
