"""Unit tests of the test VM's pieces: recipe, QEMU command, job log, share staging (no root)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from hostvm import recipe, share, vm
from vagrantbox.host import install_packages, missing_packages


def test_recipe_is_trixie_with_what_run_and_the_lab_install() -> None:
    assert recipe.VmSpec().suite == "trixie"
    wanted = {"systemd-sysv", "systemd-container", "debootstrap", "debian-archive-keyring",
              "iproute2", "openssh-client", "git", "python3-venv", "nginx", "shellcheck", "curl",
              "linux-image-cloud-amd64", "grub-pc-bin"}
    assert wanted <= set(recipe.PACKAGES)
    assert len(set(recipe.PACKAGES)) == len(recipe.PACKAGES)


def test_image_name_follows_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe.VmSpec().file_name
    assert before.startswith("trixie-") and before.endswith(".qcow2")
    assert dataclasses.replace(recipe.VmSpec(), mirror="http://mirror.example/debian").file_name \
        != before
    monkeypatch.setattr(recipe, "PACKAGES", (*recipe.PACKAGES, "strace"))
    assert recipe.VmSpec().file_name != before


def test_job_unit_writes_to_the_second_serial_port() -> None:
    unit = recipe.job_unit()
    assert "TTYPath=/dev/ttyS1" in unit
    assert f"ExecStart={recipe.JOB_RUNNER}" in unit
    assert "poweroff" in recipe.job_runner()
    assert f"-L {recipe.SHARE_LABEL}" in recipe.job_runner()


def test_qemu_is_offline_and_leaves_both_disks_untouched(tmp_path: Path) -> None:
    cmd = vm.qemu_command(tmp_path / "root.qcow2", tmp_path / "share.img", tmp_path / "c.log",
                          tmp_path / "j.log")
    assert cmd[cmd.index("-nic") + 1] == "none"
    assert "-netdev" not in cmd
    drives = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-drive"]
    assert len(drives) == 2 and all("snapshot=on" in d for d in drives)
    assert cmd[cmd.index("-accel") + 1].startswith("tcg")
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-serial"] == \
        [f"file:{tmp_path / 'c.log'}", f"file:{tmp_path / 'j.log'}"]


@pytest.mark.parametrize(("log", "code"), [
    ("hostvm-phase up 1.0 0\nhostvm: job exit 0\n", 0),
    ("hostvm: job exit 3\r\n", 3),
    ("hostvm-phase up 1.0 0\n", None),
])
def test_job_exit_from_the_log(log: str, code: int | None) -> None:
    assert vm.job_exit(log) == code


def test_checkout_stages_the_working_tree_not_ignored_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / ".gitignore").write_text("venv/\n")
    (repo / "tracked").write_text("committed\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (repo / "tracked").write_text("changed, not committed\n")
    (repo / "new").write_text("untracked\n")
    (repo / "venv").mkdir()
    (repo / "venv" / "big").write_text("ignored\n")

    dest = tmp_path / "staged"
    assert share.stage_checkout(repo, dest).startswith("working tree of ")
    files = subprocess.run(["git", "-C", str(dest), "ls-files"], check=True, capture_output=True,
                           text=True).stdout.split()
    assert sorted(files) == [".gitignore", "new", "tracked"]
    assert (dest / "tracked").read_text() == "changed, not committed\n"


def test_vm_scripts_pass_shellcheck() -> None:
    install_packages(missing_packages({"shellcheck": "shellcheck"}))
    scripts = sorted(str(p) for p in recipe.TEMPLATES.glob("*.sh"))
    assert len(scripts) == 4
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
