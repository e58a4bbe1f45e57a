"""Pure checks of what goes into the box: metadata, Vagrantfile, packages, guest files."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from vagrantbox import image, spec
from vagrantbox.boot import qemu_command
from vagrantbox.build import recipe_file, write_box
from vagrantbox.cli import main
from vagrantbox.host import missing_tools

UUID = "0b6a3f5e-1111-4222-8333-444455556666"


def test_metadata_is_libvirt_qcow2() -> None:
    assert json.loads(spec.metadata(4)) == {"provider": "libvirt", "format": "qcow2", "virtual_size": 4}


def test_vagrantfile_has_no_host_paths_and_uses_qemu() -> None:
    text = spec.vagrantfile()
    assert 'libvirt.driver = "qemu"' in text
    for setting in ("kernel", "initrd", "cmd_line"):
        assert f"libvirt.{setting}" not in text
    quoted = re.findall(r'"([^"]*)"', text)
    assert [q for q in quoted if q.startswith("/") and q != "/vagrant"] == []
    assert "/usr/" not in text and "/var/" not in text and "/boot" not in text


def test_packages_cover_boot_ssh_and_tools() -> None:
    wanted = {
        "linux-image-cloud-amd64", "initramfs-tools", "grub-pc-bin", "grub2-common", "openssh-server",
        "sudo", "python3", "curl", "unzip", "ca-certificates", "systemd-sysv",
    }
    assert wanted <= set(spec.PACKAGES)
    assert len(set(spec.PACKAGES)) == len(spec.PACKAGES)


def test_grub_cfg_serial_console_and_eth0() -> None:
    text = spec.grub_cfg(UUID)
    assert f"root=UUID={UUID}" in text
    assert "console=ttyS0" in text and "net.ifnames=0" in text
    assert "terminal_output serial" in text


def test_network_is_dhcp_on_eth0() -> None:
    text = spec.network_unit()
    assert "Name=eth0" in text and "DHCP=yes" in text


def test_sudoers_is_passwordless_for_vagrant() -> None:
    assert "vagrant ALL=(ALL) NOPASSWD:ALL" in spec.sudoers()


def test_fstab_mounts_root_by_uuid() -> None:
    assert spec.fstab(UUID).split()[:3] == [f"UUID={UUID}", "/", "ext4"]


@pytest.mark.parametrize(("text", "gb"), [("4G", 4), ("10G", 10), (" 2G ", 2)])
def test_parse_size(text: str, gb: int) -> None:
    assert spec.parse_size(text) == gb


@pytest.mark.parametrize("text", ["4", "1G", "0G", "4.5G", "4M", "G"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="GiB"):
        spec.parse_size(text)


def test_names() -> None:
    assert spec.validate_name("hashicluster/bookworm") == "hashicluster/bookworm"
    assert spec.BoxSpec().file_name == "hashicluster-bookworm.box"
    with pytest.raises(ValueError):
        spec.validate_name("a/b/c")


def test_validate_pubkey() -> None:
    assert spec.validate_pubkey("ssh-rsa AAAAB3Nza comment\n") == "ssh-rsa AAAAB3Nza comment\n"
    with pytest.raises(ValueError):
        spec.validate_pubkey("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_box_tar_layout(tmp_path: Path) -> None:
    disk = tmp_path / "box.img"
    disk.write_bytes(b"QFI\xfb")
    target = tmp_path / "x.box"
    write_box(spec.BoxSpec(size_gb=6), disk, target)
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
        meta = tar.extractfile("metadata.json")
        assert meta is not None
        assert json.load(io.TextIOWrapper(meta))["virtual_size"] == 6


def test_qemu_command_is_offline_and_pristine(tmp_path: Path) -> None:
    cmd = qemu_command(tmp_path / "box.img")
    assert cmd[cmd.index("-nic") + 1] == "none"
    assert "snapshot=on" in cmd[cmd.index("-drive") + 1]
    assert "tcg" in cmd[cmd.index("-accel") + 1]


def test_missing_tools_names_package() -> None:
    assert missing_tools({"no-such-tool-xyz": "some-pkg"}) == ["no-such-tool-xyz (some-pkg)"]


def test_existing_box_is_reported_not_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A box built from the same recipe (its `.recipe` file holds the recipe's digest) is
    reported as it is; nothing is built (as root with the build tools, a build would run)."""
    def no_build(*args: object) -> Path:
        raise AssertionError("the box was built again")

    monkeypatch.setattr(image, "build_qcow2", no_build)
    pubkey = tmp_path / "key.pub"
    pubkey.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LW5vdC1mb3ItdXNl test\n")
    box = tmp_path / "hashicluster-bookworm.box"
    box.write_bytes(b"x")
    recipe_file(box).write_text(spec.recipe_digest(spec.BoxSpec(), spec.validate_pubkey(pubkey.read_text())))
    assert main(["build", "--out", str(tmp_path), "--pubkey", str(pubkey)]) == 0
    assert capsys.readouterr().out.strip() == str(box)
    assert box.read_bytes() == b"x"


def test_bad_size_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--out", str(tmp_path), "--size", "1G"]) == 1
    assert "GiB" in capsys.readouterr().err
