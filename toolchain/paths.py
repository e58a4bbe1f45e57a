"""Where the toolchain keeps things: ``<cache>/toolchain/...`` outside the repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolchain.pins import DEFAULT_ARCH, linux_platform

DEFAULT_CACHE_ROOT = Path("/var/cache/hashicluster")
CACHE_ENV = "HASHICLUSTER_CACHE"


def cache_root() -> Path:
    """Return the cache root: ``$HASHICLUSTER_CACHE`` or ``/var/cache/hashicluster``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value) if value else DEFAULT_CACHE_ROOT


@dataclass(frozen=True)
class Layout:
    """Paths below ``<cache>/toolchain``."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        """Layout under the cache root named by the environment."""
        return cls(cache_root() / "toolchain")

    @property
    def cache(self) -> Path:
        """The cache root (parent of ``toolchain/``)."""
        return self.root.parent

    @property
    def logs(self) -> Path:
        """Build and download logs."""
        return self.root / "logs"

    @property
    def tmp(self) -> Path:
        """Staging area; on the same filesystem as the installs so renames are atomic."""
        return self.root / ".tmp"

    @property
    def downloads(self) -> Path:
        """Verified release artefacts, named by their sha256."""
        return self.root / "downloads"

    @property
    def pulumi_home(self) -> Path:
        """PULUMI_HOME used by `python3 -m toolchain env`."""
        return self.cache / "pulumi-home"

    def arch_root(self, tool: str, arch: str = DEFAULT_ARCH) -> Path:
        """The dir holding a tool's versions for one architecture: ``<tool>`` for amd64, else
        ``<tool>/linux_<arch>`` (versions start with a digit, so the two never collide)."""
        tool_root = self.root / tool
        return tool_root if arch == DEFAULT_ARCH else tool_root / linux_platform(arch)

    def tool_dir(self, tool: str, version: str, arch: str = DEFAULT_ARCH) -> Path:
        """Install dir of one tool version for one architecture."""
        return self.arch_root(tool, arch) / version

    def bin_dir(self, tool: str, version: str, arch: str = DEFAULT_ARCH) -> Path:
        """Dir holding the installed binaries of one tool version."""
        return self.tool_dir(tool, version, arch) / "bin"

    def lock_file(self, tool: str, arch: str = DEFAULT_ARCH) -> Path:
        """Lock taken while a tool is installed for one architecture (a cross-build of arm64
        never holds up the amd64 binaries)."""
        return self.root / tool / (".lock" if arch == DEFAULT_ARCH else f".lock-{linux_platform(arch)}")

    def ensure_dirs(self) -> None:
        """Create the directories the toolchain writes to."""
        for path in (self.root, self.logs, self.tmp, self.downloads):
            path.mkdir(parents=True, exist_ok=True)
