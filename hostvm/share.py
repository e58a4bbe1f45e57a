"""The share disk: what the VM gets from this host, as one ext4 image (`mkfs.ext4 -d`).

Inside the VM it is mounted on /var/cache/hashicluster (the lab's and the toolchain's cache),
so it holds, in their usual places:

    toolchain/                 the built tools (no logs, downloads or staging)
    pulumi-home/               the Pulumi plugins, when the toolchain made that directory
    lab/base-<suite>-<hash>/   the lab's cached base (nothing is debootstrapped in the VM)
    hostvm/src/                the checkout as a git repository (the job clones it)
    hostvm/wheels/             the Python requirements as wheels for the VM's Python
    hostvm/job.sh              what the VM runs at boot

QEMU opens it with snapshot=on: the VM may write to it, the image never changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hostvm import recipe
from vagrantbox.host import cache_root, log, run

TOOLCHAIN_SKIP = ("logs", ".tmp", "downloads")
VM_PYTHON = "3.13"  # trixie's python3
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64",
                   "manylinux_2_34_x86_64", "linux_x86_64", "any")
HEADROOM_MIB = 1024


def copy_tree(src: Path, dest: Path) -> None:
    """DEST as a copy of SRC: hard links where they can be made (same file system), else a copy.

    mkfs.ext4 only reads the staging tree, so linking never changes the sources.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", src, dest], capture_output=True, check=False).returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        run(["cp", "-a", src, dest])


def stage_checkout(repo: Path, dest: Path) -> str:
    """The working tree of REPO (tracked and untracked files, not ignored ones) as a fresh git
    repository in DEST with one commit; returns the commit subject (the source's HEAD)."""
    listing = run(["git", "-C", repo, "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard"])
    dest.mkdir(parents=True)
    for name in sorted(set(filter(None, listing.split("\0")))):
        src = repo / name
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    head = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"]).strip()
    subject = f"working tree of {head}"
    identity = ["-c", "user.name=hostvm", "-c", "user.email=hostvm@localhost"]
    run(["git", "-C", dest, "init", "-q", "-b", "main"])
    run(["git", "-C", dest, "add", "-A"])
    run(["git", "-C", dest, *identity, "commit", "-q", "-m", subject])
    return subject


def stage_toolchain(cache: Path, dest: Path) -> None:
    """The built tools and the Pulumi plugins from the host's cache CACHE into DEST."""
    toolchain = cache / "toolchain"
    for entry in sorted(toolchain.iterdir()):
        if entry.name not in TOOLCHAIN_SKIP:
            copy_tree(entry, dest / "toolchain" / entry.name)
    if (cache / "pulumi-home").is_dir():
        copy_tree(cache / "pulumi-home", dest / "pulumi-home")


def requirements_hash(files: list[Path]) -> str:
    """12 hex digits of the requirement files' contents and the VM's Python."""
    digest = hashlib.sha256(VM_PYTHON.encode())
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def wheelhouse(requirements: Path) -> Path:
    """Wheels of REQUIREMENTS (and the files it includes) for the VM's Python, cached by hash."""
    files = [requirements, *(requirements.parent / line.split(None, 1)[1].strip()
                             for line in requirements.read_text().splitlines()
                             if line.startswith("-r "))]
    target = cache_root() / "hostvm" / f"wheels-py{VM_PYTHON}-{requirements_hash(files)}"
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"downloading wheels for Python {VM_PYTHON} into {target} ...")
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
         "-r", requirements, "-d", partial, "--only-binary=:all:", "--python-version", VM_PYTHON,
         "--implementation", "cp", "--abi", "cp" + VM_PYTHON.replace(".", ""), "--abi", "abi3",
         "--abi", "none", *platforms])
    partial.rename(target)
    return target


def tree_bytes(root: Path) -> int:
    """The bytes of every regular file under ROOT (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def make_ext4(stage: Path, image: Path) -> None:
    """An ext4 image (label hcshare) holding STAGE, with room to spare for the VM's writes."""
    size_mib = tree_bytes(stage) * 13 // 10 // 2**20 + HEADROOM_MIB
    run(["mkfs.ext4", "-q", "-F", "-L", recipe.SHARE_LABEL, "-i", "8192", "-d", stage, image,
         f"{size_mib}M"])


def build(repo: Path, base: Path, job: str, work: Path) -> Path:
    """The share disk for one run, in WORK: checkout, toolchain, lab base, wheels and JOB."""
    stage = work / "share"
    stage.mkdir(parents=True)
    cache = cache_root()
    log(f"staging the checkout ({stage_checkout(repo, stage / 'hostvm' / 'src')})")
    stage_toolchain(cache, stage)
    copy_tree(base, stage / "lab" / base.name)
    copy_tree(wheelhouse(repo / "requirements-dev.txt"), stage / "hostvm" / "wheels")
    (stage / "hostvm" / "job.sh").write_text(job)
    image = work / "share.img"
    make_ext4(stage, image)
    shutil.rmtree(stage)
    return image
