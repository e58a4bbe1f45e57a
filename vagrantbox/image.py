"""The disk image: partitioned raw file -> loop device -> ext4 -> debootstrap -> GRUB -> qcow2."""

from __future__ import annotations

import contextlib
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from vagrantbox import spec
from vagrantbox.errors import BoxError
from vagrantbox.host import debootstrap_cache_dir, log, run

PARTITION_TABLE = "label: dos\nstart=2048, type=83, bootable\n"
MKFS_OPTIONS = ("-O", "^metadata_csum_seed,^orphan_file")  # features GRUB 2.06 cannot read


def wait_for(path: Path, seconds: float) -> bool:
    """True once PATH exists, polling for up to SECONDS."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ensure_partition_node(dev: str) -> None:
    """Make DEVp1 appear: the kernel's partscan, else `partx --add`, else mknod from sysfs."""
    part = Path(f"{dev}p1")
    if wait_for(part, 1.0):
        return
    with contextlib.suppress(BoxError):
        run(["partx", "--add", dev])
    if wait_for(part, 3.0):
        return
    name = Path(dev).name
    sys_dev = Path(f"/sys/block/{name}/{name}p1/dev")
    if sys_dev.exists():
        major, minor = (int(n) for n in sys_dev.read_text().split(":"))
        os.mknod(part, 0o660 | stat.S_IFBLK, os.makedev(major, minor))
        return
    raise BoxError(f"{part} did not appear after losetup --partscan and partx --add (util-linux)")


@contextlib.contextmanager
def loop_device(raw: Path) -> Iterator[str]:
    """Attach RAW with partition scanning; yield /dev/loopN; detach afterwards."""
    dev = run(["losetup", "--find", "--show", "--partscan", raw]).strip()
    try:
        ensure_partition_node(dev)
        yield dev
    finally:
        with contextlib.suppress(BoxError):
            run(["losetup", "--detach", dev])


@contextlib.contextmanager
def mounted(source: str, target: Path, *options: str) -> Iterator[Path]:
    """Mount SOURCE on TARGET (mount OPTIONS before the source); unmount recursively afterwards."""
    target.mkdir(parents=True, exist_ok=True)
    run(["mount", *options, source, target])
    try:
        yield target
    finally:
        try:
            run(["umount", "--recursive", target])
        except BoxError:
            run(["umount", "--recursive", "--lazy", target])


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/dev, /proc and /sys inside ROOT for commands that probe devices (grub-install)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mounted("/dev", root / "dev", "--bind"))
        stack.enter_context(mounted("proc", root / "proc", "-t", "proc"))
        stack.enter_context(mounted("sysfs", root / "sys", "-t", "sysfs"))
        yield


def make_raw_disk(raw: Path, size_gb: int) -> None:
    """A sparse raw file of SIZE_GB GiB with one bootable Linux partition (MBR)."""
    with raw.open("wb") as handle:
        handle.truncate(size_gb * 1024**3)
    run(["sfdisk", "--quiet", raw], stdin=PARTITION_TABLE)


def debootstrap(box: spec.BoxSpec, root: Path) -> None:
    """Debian into ROOT, with the package download cache kept between builds."""
    cache = debootstrap_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {box.suite} (package cache {cache}) ...")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(spec.PACKAGES)}",
            f"--cache-dir={cache}",
            box.suite,
            root,
            box.mirror,
        ],
        quiet=True,
    )


def write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write TEXT to PATH (parents created) with MODE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def chroot(root: Path, *cmd: str) -> str:
    """Run CMD inside ROOT."""
    return run(["chroot", root, *cmd])


def replace_link(link: Path, target: str) -> None:
    """Make LINK a symlink to TARGET, replacing whatever is there."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def configure_guest(box: spec.BoxSpec, root: Path, root_uuid: str, pubkey: str) -> None:
    """Network, users, ssh, sudo and first-boot identity inside the debootstrapped ROOT."""
    hostname = box.suite
    write(root / "etc/fstab", spec.fstab(root_uuid))
    write(root / "etc/hostname", hostname + "\n")
    write(root / "etc/hosts", spec.hosts(hostname))
    write(root / "etc/systemd/network/10-eth0.network", spec.network_unit())
    write(root / "etc/systemd/system/ssh-hostkeys.service", spec.ssh_hostkeys_unit())
    write(root / f"etc/sudoers.d/{spec.VAGRANT_USER}", spec.sudoers(), 0o440)
    write(root / "etc/apt/sources.list", sources_list(box))
    chroot(root, "systemctl", "enable", "systemd-networkd", "systemd-resolved", "ssh", "ssh-hostkeys")
    chroot(root, "systemctl", "disable", *spec.DISABLED_UNITS)
    chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", spec.VAGRANT_USER)
    chroot(root, "usermod", "--password", "*", spec.VAGRANT_USER)  # key login only, not locked
    ssh_dir = root / "home" / spec.VAGRANT_USER / ".ssh"
    write(ssh_dir / "authorized_keys", pubkey, 0o600)
    ssh_dir.chmod(0o700)
    chroot(root, "chown", "-R", f"{spec.VAGRANT_USER}:{spec.VAGRANT_USER}", f"/home/{spec.VAGRANT_USER}/.ssh")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write(root / "etc/machine-id", "")
    replace_link(root / "var/lib/dbus/machine-id", "/etc/machine-id")
    replace_link(root / "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
    for leftover in (*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*_*")):
        leftover.unlink()


def sources_list(box: spec.BoxSpec) -> str:
    """apt sources for the guest: the suite, its updates and security."""
    security = box.mirror.rstrip("/") + "-security"
    return (
        f"deb {box.mirror} {box.suite} main\n"
        f"deb {box.mirror} {box.suite}-updates main\n"
        f"deb {security} {box.suite}-security main\n"
    )


def install_bootloader(root: Path, dev: str, root_uuid: str) -> None:
    """Make sure an initramfs exists, install GRUB (i386-pc) to DEV's MBR, write grub.cfg."""
    if not (root / "initrd.img").exists():
        chroot(root, "update-initramfs", "-c", "-k", "all")
    for link in ("vmlinuz", "initrd.img"):
        if not (root / link).exists():
            raise BoxError(f"/{link} is missing in the guest; is linux-image-cloud-amd64 installed?")
    with chroot_mounts(root):
        chroot(root, "grub-install", "--target=i386-pc", "--boot-directory=/boot", dev)
    write(root / "boot/grub/grub.cfg", spec.grub_cfg(root_uuid))


def build_qcow2(box: spec.BoxSpec, pubkey: str, work: Path) -> Path:
    """Build the bootable disk in WORK; return the path of the compressed qcow2 image."""
    raw = work / "disk.raw"
    root_uuid = str(uuid.uuid4())
    make_raw_disk(raw, box.size_gb)
    with loop_device(raw) as dev:
        run(["mkfs.ext4", "-F", "-q", "-L", "root", "-U", root_uuid, *MKFS_OPTIONS, f"{dev}p1"])
        with mounted(f"{dev}p1", work / "root") as root:
            debootstrap(box, root)
            log("configuring the guest ...")
            configure_guest(box, root, root_uuid, pubkey)
            log("installing GRUB ...")
            install_bootloader(root, dev, root_uuid)
            os.sync()
            run(["fstrim", root])  # freed blocks (deleted .debs) become holes, not qcow2 data
    qcow2 = work / "box.img"
    log("converting to qcow2 ...")
    run(["qemu-img", "convert", "-c", "-O", "qcow2", raw, qcow2])
    raw.unlink()
    return qcow2
