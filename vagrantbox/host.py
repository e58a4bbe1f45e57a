"""Host facts and helpers: running commands, required tools, cache locations, Vagrant's key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vagrantbox.errors import BoxError

DEFAULT_CACHE = "/var/cache/hashicluster"

# tool -> Debian package that provides it
BUILD_TOOLS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "sfdisk": "fdisk",
    "losetup": "mount",
    "partx": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "mkfs.ext4": "e2fsprogs",
    "fstrim": "util-linux",
    "chroot": "coreutils",
    "qemu-img": "qemu-utils",
}
BOOT_TOOLS: dict[str, str] = {"qemu-system-x86_64": "qemu-system-x86"}


def cache_root() -> Path:
    """$HASHICLUSTER_CACHE or /var/cache/hashicluster."""
    return Path(os.environ.get("HASHICLUSTER_CACHE") or DEFAULT_CACHE).absolute()


def default_out_dir() -> Path:
    """Where built boxes go unless --out is given."""
    return cache_root() / "vagrantbox" / "boxes"


def debootstrap_cache_dir() -> Path:
    """debootstrap's package cache (kept between builds so rebuilds download nothing)."""
    return cache_root() / "vagrantbox" / "debootstrap-cache"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"vagrantbox: {message}", file=sys.stderr, flush=True)


def _on_path(tool: str) -> bool:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is not None


def missing_tools(tools: dict[str, str]) -> list[str]:
    """'tool (package)' for each tool not on PATH (sbin included)."""
    return [f"{tool} ({pkg})" for tool, pkg in tools.items() if not _on_path(tool)]


def require_tools(tools: dict[str, str]) -> None:
    """Raise naming every missing tool and the apt-get command that installs it."""
    missing = missing_tools(tools)
    if missing:
        raise BoxError(f"missing tools: {', '.join(missing)}; install them with: "
                       f"apt-get install -y {' '.join(missing_packages(tools))}")


def require_root() -> None:
    """Building needs loop devices, mount and chroot."""
    if os.geteuid() != 0:
        raise BoxError("building a box needs root (loop devices, mount, chroot); run it as root")


def run(cmd: Sequence[str | os.PathLike[str]], *, quiet: bool = False, stdin: str | None = None) -> str:
    """Run CMD (with STDIN text); return stdout; raise BoxError with its stderr on failure."""
    args = [os.fspath(c) for c in cmd]
    env = dict(os.environ, LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive")
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    proc = subprocess.run(
        args, input=stdin, capture_output=True, text=True, env=env, check=False,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BoxError(f"command failed ({proc.returncode}): {' '.join(args)}\n{tail}")
    if not quiet and proc.stderr.strip():
        for line in proc.stderr.strip().splitlines()[-3:]:
            log(f"  {line}")
    return proc.stdout


def vagrant_insecure_pubkey() -> Path:
    """Vagrant's documented insecure public key, from the installed vagrant package's own copy."""
    if shutil.which("dpkg-query") is None:
        raise BoxError("cannot look up the vagrant package (no dpkg-query); pass --pubkey FILE")
    proc = subprocess.run(["dpkg-query", "-L", "vagrant"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BoxError(
            "Vagrant's insecure public key comes from the vagrant package, which is not installed: "
            "apt-get install -y vagrant (or pass --pubkey FILE)"
        )
    for line in proc.stdout.splitlines():
        path = Path(line.strip())
        if path.name == "vagrant.pub" and path.parent.name == "keys" and path.is_file():
            return path
    raise BoxError("the vagrant package has no keys/vagrant.pub; pass --pubkey FILE")


def missing_packages(tools: dict[str, str]) -> list[str]:
    """Debian packages that would provide the tools not on PATH."""
    return sorted({pkg for tool, pkg in tools.items() if not _on_path(tool)})


def install_packages(packages: list[str]) -> None:
    """apt-get install PACKAGES (updating the lists once if the first try fails)."""
    if not packages:
        return
    if shutil.which("apt-get") is None:
        raise BoxError(f"missing packages {', '.join(packages)} and no apt-get: install them by hand")
    log(f"installing {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def apt(*args: str) -> int:
        return subprocess.call(["apt-get", *args], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)

    install = ("install", "-y", "-q", "--no-install-recommends", *packages)
    if apt(*install) != 0 and (apt("update", "-q") != 0 or apt(*install) != 0):
        raise BoxError(f"could not install {' '.join(packages)} with apt-get")
