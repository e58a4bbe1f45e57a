"""What goes into the box: packages, guest configuration files, metadata and the Vagrantfile.

Everything here is pure (no I/O) so it can be unit tested.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

DEFAULT_NAME = "hashicluster/bookworm"
DEFAULT_SUITE = "bookworm"
DEFAULT_SIZE = "4G"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
VAGRANT_USER = "vagrant"
KERNEL_CMDLINE = "ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"

# debootstrap --variant=minbase plus what a Vagrant machine needs to boot and be driven over ssh.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "dbus",
    "udev",
    "kmod",
    "iproute2",
    "iputils-ping",
    "procps",
    "less",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "grub-pc-bin",
    "grub2-common",
    "openssh-server",
    "sudo",
    "python3",
    "curl",
    "unzip",
    "ca-certificates",
    "rsync",
    # the load balancer's reverse proxy, for sites whose machines cannot reach a Debian mirror;
    # installed but disabled (the cluster's nginx step configures and starts it where needed)
    "nginx",
    # the clients' container engine (with containerd and runc), likewise installed but off
    # until the cluster's docker step turns it on
    "docker.io",
    "iptables",
    # the box's kernel has AppArmor on: Docker then loads its docker-default profile for every
    # container with apparmor_parser, and refuses to start one without it
    "apparmor",
    # the cluster's image registry (on the load balancer) and the DNS forwarder for *.consul
    # names, likewise off until the cluster's steps configure them
    "docker-registry",
    "dnsmasq",
)
DISABLED_UNITS: tuple[str, ...] = ("nginx.service", "docker.service", "docker.socket", "containerd.service",
                                   "docker-registry.service", "dnsmasq.service")

_SIZE_RE = re.compile(r"^([1-9][0-9]*)G$")


@dataclass(frozen=True)
class BoxSpec:
    """One box to build: its Vagrant name, Debian suite, disk size in GiB and apt mirror."""

    name: str = DEFAULT_NAME
    suite: str = DEFAULT_SUITE
    size_gb: int = 4
    mirror: str = DEFAULT_MIRROR

    @property
    def file_name(self) -> str:
        """The .box file name: the Vagrant name with '/' replaced (hashicluster-bookworm.box)."""
        return self.name.replace("/", "-") + ".box"


def parse_size(text: str) -> int:
    """Disk size like '4G' -> 4 (whole GiB; Vagrant's libvirt metadata counts in GB)."""
    match = _SIZE_RE.match(text.strip())
    if not match or int(match.group(1)) < 2:
        raise ValueError(f"size {text!r} is not a whole number of GiB of at least 2, e.g. 4G")
    return int(match.group(1))


def validate_name(name: str) -> str:
    """A Vagrant box name: 'org/name' or 'name' of letters, digits, '.', '_' and '-'."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?", name):
        raise ValueError(f"box name {name!r} is not of the form ORG/NAME, e.g. {DEFAULT_NAME}")
    return name


def metadata(size_gb: int) -> str:
    """metadata.json of a libvirt box."""
    return json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": size_gb}) + "\n"


def vagrantfile() -> str:
    """The box's own Vagrantfile: provider defaults only, no host paths.

    The guest boots from its own disk (GRUB), so no kernel/initrd/cmd_line settings are needed.
    `driver = "qemu"` selects software emulation; a project Vagrantfile may override it with "kvm".
    The virtio RNG lets first-boot ssh-keygen finish quickly under TCG (it stalls without one).
    """
    return (
        'Vagrant.configure("2") do |config|\n'
        '  config.vm.synced_folder ".", "/vagrant", disabled: true\n'
        "  config.vm.boot_timeout = 600\n"
        "  config.vm.provider :libvirt do |libvirt|\n"
        '    libvirt.driver = "qemu"\n'
        '    libvirt.disk_bus = "virtio"\n'
        '    libvirt.nic_model_type = "virtio"\n'
        '    libvirt.graphics_type = "none"\n'
        '    libvirt.video_type = "none"\n'
        "    libvirt.memory = 512\n"
        "    libvirt.random model: \"random\"\n"
        "  end\n"
        "end\n"
    )


def grub_cfg(root_uuid: str) -> str:
    """GRUB menu: serial + screen console, boots /vmlinuz and /initrd.img from the root fs."""
    return (
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        "set timeout=1\n"
        "set default=0\n"
        "insmod part_msdos\n"
        "insmod ext2\n"
        f"search --no-floppy --fs-uuid --set=root {root_uuid}\n"
        "menuentry 'Debian GNU/Linux' {\n"
        f"  linux /vmlinuz root=UUID={root_uuid} {KERNEL_CMDLINE}\n"
        "  initrd /initrd.img\n"
        "}\n"
    )


def fstab(root_uuid: str) -> str:
    """/etc/fstab with the one root file system."""
    return f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n"


def network_unit() -> str:
    """systemd-networkd: DHCP on eth0 (Vagrant's management network)."""
    return "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n"


def sudoers() -> str:
    """Passwordless sudo for the vagrant user."""
    return f"{VAGRANT_USER} ALL=(ALL) NOPASSWD:ALL\nDefaults:{VAGRANT_USER} !requiretty\n"


def ssh_hostkeys_unit() -> str:
    """A oneshot unit that creates ssh host keys on first boot (the box ships none)."""
    return (
        "[Unit]\n"
        "Description=Create ssh host keys on first boot\n"
        "ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n"
        "Before=ssh.service\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "ExecStart=/usr/bin/ssh-keygen -A\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target ssh.service\n"
    )


def hosts(hostname: str) -> str:
    """/etc/hosts for the guest."""
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def validate_pubkey(text: str) -> str:
    """One ssh public key line (type, base64, optional comment); raises ValueError otherwise."""
    line = text.strip()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")) or "\n" in line:
        raise ValueError("not a single ssh public key line")
    return line + "\n"


def recipe_digest(box: BoxSpec, pubkey: str) -> str:
    """A hash of everything that goes into the box: a box built from another recipe is stale."""
    parts = [box.name, box.suite, str(box.size_gb), box.mirror, pubkey, KERNEL_CMDLINE, *PACKAGES,
             *DISABLED_UNITS, vagrantfile(), network_unit(), sudoers(), ssh_hostkeys_unit(),
             metadata(box.size_gb)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
