"""Build the VM's disk (cached by its recipe hash): vagrantbox's disk pieces, this VM's guest."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from hostvm import recipe
from vagrantbox import image as boxdisk
from vagrantbox.host import (
    BUILD_TOOLS,
    cache_root,
    debootstrap_cache_dir,
    log,
    require_root,
    require_tools,
    run,
)


def images_dir() -> Path:
    """Where built VM images are cached: <cache>/hostvm/images."""
    return cache_root() / "hostvm" / "images"


def image_path(vm: recipe.VmSpec) -> Path:
    """The cached image of VM's recipe (it exists once a build has finished)."""
    return images_dir() / vm.file_name


def debootstrap(vm: recipe.VmSpec, root: Path) -> None:
    """Debian VM.suite into ROOT with the recipe's packages (the .deb cache kept for rebuilds)."""
    cache = debootstrap_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {vm.suite} from {vm.mirror} (package cache {cache}) ...")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(recipe.PACKAGES)}",
         f"--cache-dir={cache}", vm.suite, root, vm.mirror], quiet=True)


def configure_guest(vm: recipe.VmSpec, root: Path, root_uuid: str) -> None:
    """Identity, the job unit and the units turned off, inside the debootstrapped ROOT."""
    boxdisk.write(root / "etc/fstab", recipe.fstab(root_uuid))
    boxdisk.write(root / "etc/hostname", recipe.HOSTNAME + "\n")
    boxdisk.write(root / "etc/hosts", recipe.hosts())
    boxdisk.write(root / "etc/machine-id", "")  # systemd makes one at first boot
    boxdisk.write(root / "etc/apt/sources.list", f"deb {vm.mirror} {vm.suite} main\n")
    boxdisk.write(root / "etc/systemd/system" / recipe.JOB_UNIT, recipe.job_unit())
    boxdisk.write(root / recipe.JOB_RUNNER.lstrip("/"), recipe.job_runner(), 0o755)
    boxdisk.chroot(root, "systemctl", "enable", recipe.JOB_UNIT)
    boxdisk.chroot(root, "systemctl", "disable", *recipe.DISABLED_UNITS)
    boxdisk.chroot(root, "systemctl", "mask", *recipe.MASKED_UNITS)
    for leftover in (*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*_*")):
        leftover.unlink()


def build_qcow2(vm: recipe.VmSpec, work: Path) -> Path:
    """A bootable disk of VM in WORK (raw -> loop -> ext4 -> debootstrap -> GRUB -> qcow2)."""
    raw = work / "disk.raw"
    root_uuid = str(uuid.uuid4())
    boxdisk.make_raw_disk(raw, recipe.SIZE_GB)
    with boxdisk.loop_device(raw) as dev:
        run(["mkfs.ext4", "-F", "-q", "-L", "root", "-U", root_uuid, *boxdisk.MKFS_OPTIONS,
             f"{dev}p1"])
        with boxdisk.mounted(f"{dev}p1", work / "root") as root:
            debootstrap(vm, root)
            log("configuring the guest ...")
            configure_guest(vm, root, root_uuid)
            log("installing GRUB ...")
            boxdisk.install_bootloader(root, dev, root_uuid)
            os.sync()
            run(["fstrim", root])
    qcow2 = work / "disk.qcow2"
    run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2])
    raw.unlink()
    return qcow2


def ensure(vm: recipe.VmSpec) -> Path:
    """The cached image of VM, built first if missing (one builder at a time)."""
    target = image_path(vm)
    if target.exists():
        return target
    require_root()
    require_tools(BUILD_TOOLS)
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=images_dir()))
        try:
            build_qcow2(vm, work).replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"built {target} ({target.stat().st_size / 2**20:.0f} MiB) in "
        f"{time.monotonic() - started:.0f} s")
    return target
