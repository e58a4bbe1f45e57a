"""Where the lab keeps things: the cached base, per-machine state and runtime records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = "/var/cache/hashicluster"
DEFAULT_STATE = "/var/lib/hashicluster/lab"
DEFAULT_RUNTIME = "/run/hashicluster/lab"
DEFAULT_SUITE = "bookworm"


@dataclass(frozen=True)
class Paths:
    """All lab locations, derived from three roots (each overridable by the environment)."""

    cache: Path
    state: Path
    runtime: Path

    @classmethod
    def from_env(cls) -> Paths:
        """Roots from $HASHICLUSTER_CACHE, $HASHICLUSTER_LAB_STATE, $HASHICLUSTER_LAB_RUNTIME."""
        cache = Path(os.environ.get("HASHICLUSTER_CACHE") or DEFAULT_CACHE)
        state = Path(os.environ.get("HASHICLUSTER_LAB_STATE") or DEFAULT_STATE)
        runtime = Path(os.environ.get("HASHICLUSTER_LAB_RUNTIME") or DEFAULT_RUNTIME)
        return cls(cache=cache.absolute(), state=state.absolute(), runtime=runtime.absolute())

    def base(self, key: str) -> Path:
        """The cached base root filesystem with KEY (`<suite>-<recipe hash>`, see lab.base)."""
        return self.cache / "lab" / f"base-{key}"

    @property
    def base_dir(self) -> Path:
        """The directory holding every cached base (and half-built ones)."""
        return self.cache / "lab"

    @property
    def machines(self) -> Path:
        """One directory per machine: record, overlay upper/work dirs and mount point."""
        return self.state / "machines"

    def machine(self, name: str) -> Path:
        """The state directory of one machine."""
        return self.machines / name

    @property
    def ssh_dir(self) -> Path:
        """The lab's SSH key pair and known_hosts file."""
        return self.state / "ssh"

    @property
    def private_key(self) -> Path:
        """The lab SSH key: root on every machine accepts it."""
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """Host keys of the machines, by address."""
        return self.ssh_dir / "known_hosts"

    @property
    def locks(self) -> Path:
        """Lock files (the global one and one per machine)."""
        return self.state / "locks"

    @property
    def forwards(self) -> Path:
        """Records of running loopback forwarders."""
        return self.runtime / "forwards"

    @property
    def nspawn_tmpfs_marker(self) -> Path:
        """Present when the lab mounted the tmpfs on /run/systemd/nspawn."""
        return self.runtime / "nspawn-tmpfs-mounted"
