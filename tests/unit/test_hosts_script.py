"""scripts/hosts: a stack's marked block in a hosts file, added, replaced and removed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hosts"
ORIGINAL = (
    "127.0.0.1\tlocalhost\n"
    "::1     localhost ip6-localhost ip6-loopback\n"
    "# a comment someone wrote\n"
    "192.168.1.5 nas.home nas\n"
)
LINES = "10.210.1.10 root.server.demo root\n10.210.1.20 frontend.lb.demo frontend\n"
BLOCK = (
    "# BEGIN hashicluster lab\n"
    "10.210.1.10 root.server.demo root\n"
    "10.210.1.20 frontend.lb.demo frontend\n"
    "# END hashicluster lab\n"
)


def hosts(*args: str, stdin: str = "", env: dict[str, str] | None = None,
          shell: tuple[str, ...] = ("sh",)) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell, str(SCRIPT), *args], input=stdin, capture_output=True,
                          text=True, check=False, timeout=30, env=env)


@pytest.fixture()
def hosts_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    return path


# POSIX shells found here (macOS runs it with its /bin/sh, a bash in POSIX mode).
SHELLS = [shell for shell in (("sh",), ("dash",), ("bash", "--posix"), ("busybox", "sh"))
          if shutil.which(shell[0])]


@pytest.mark.parametrize("shell", SHELLS, ids=[" ".join(s) for s in SHELLS])
def test_add_appends_the_block_and_twice_is_the_same(hosts_file: Path,
                                                     shell: tuple[str, ...]) -> None:
    first = hosts("add", "--file", str(hosts_file), stdin=LINES, shell=shell)
    assert first.returncode == 0, first.stderr
    assert hosts_file.read_text() == ORIGINAL + BLOCK
    inode, mtime = hosts_file.stat().st_ino, hosts_file.stat().st_mtime_ns
    again = hosts("add", "--file", str(hosts_file), stdin=LINES, shell=shell)
    assert again.returncode == 0 and "unchanged" in again.stderr
    assert hosts_file.read_text() == ORIGINAL + BLOCK
    assert (hosts_file.stat().st_ino, hosts_file.stat().st_mtime_ns) == (inode, mtime)
    assert hosts("remove", "--file", str(hosts_file), shell=shell).returncode == 0
    assert hosts_file.read_text() == ORIGINAL


# awk implementations found here; original-awk is the one macOS ships.
AWKS = [awk for awk in ("mawk", "gawk", "original-awk", "busybox") if shutil.which(awk)]


@pytest.mark.parametrize("awk", AWKS)
def test_each_awk_gives_the_same_result(hosts_file: Path, tmp_path: Path, awk: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = shutil.which(awk)
    assert target is not None
    if awk == "busybox":
        (bin_dir / "awk").write_text(f'#!/bin/sh\nexec {target} awk "$@"\n')
        (bin_dir / "awk").chmod(0o755)
    else:
        (bin_dir / "awk").symlink_to(target)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert hosts("add", "--file", str(hosts_file), stdin=LINES, env=env).returncode == 0
    assert hosts_file.read_text() == ORIGINAL + BLOCK
    bad = hosts("add", "--file", str(hosts_file), stdin="10.210.1.300 x\n", env=env)
    assert bad.returncode == 1 and 'line 1 is not "ADDRESS NAME...": 10.210.1.300 x' in bad.stderr
    assert hosts("remove", "--file", str(hosts_file), env=env).returncode == 0
    assert hosts_file.read_text() == ORIGINAL


def test_spaces_are_normalised_and_blank_lines_skipped(hosts_file: Path) -> None:
    res = hosts("add", "--file", str(hosts_file),
                stdin="\n10.210.1.10\troot.server.demo   root  \n\n"
                      "10.210.1.20 frontend.lb.demo frontend\r\n")
    assert res.returncode == 0, res.stderr
    assert hosts_file.read_text() == ORIGINAL + BLOCK


def test_replace_changes_only_the_block(hosts_file: Path) -> None:
    after = "\n# something added after the block\n10.0.0.9 other.example\n"
    hosts_file.write_text(ORIGINAL + BLOCK + after)
    res = hosts("add", "--file", str(hosts_file), stdin="10.210.1.31 client1.demo client1\n")
    assert res.returncode == 0, res.stderr
    assert hosts_file.read_text() == (ORIGINAL + "# BEGIN hashicluster lab\n"
                                      "10.210.1.31 client1.demo client1\n"
                                      "# END hashicluster lab\n" + after)


def test_remove_leaves_the_rest_byte_identical(hosts_file: Path) -> None:
    assert hosts("add", "--file", str(hosts_file), stdin=LINES).returncode == 0
    res = hosts("remove", "--file", str(hosts_file))
    assert res.returncode == 0, res.stderr
    assert hosts_file.read_bytes() == ORIGINAL.encode()
    again = hosts("remove", "--file", str(hosts_file))
    assert again.returncode == 0 and "nothing to remove" in again.stderr
    assert hosts_file.read_bytes() == ORIGINAL.encode()


def test_a_block_in_the_middle_is_removed_cleanly(hosts_file: Path) -> None:
    hosts_file.write_text("127.0.0.1 localhost\n" + BLOCK + "192.168.1.5 nas\n")
    assert hosts("remove", "--file", str(hosts_file)).returncode == 0
    assert hosts_file.read_text() == "127.0.0.1 localhost\n192.168.1.5 nas\n"


def test_another_stacks_block_is_untouched(hosts_file: Path) -> None:
    other = "10.210.9.10 root.server.e2e root\n"
    assert hosts("add", "--file", str(hosts_file), "--stack", "e2e", stdin=other).returncode == 0
    assert hosts("add", "--file", str(hosts_file), stdin=LINES).returncode == 0
    e2e_block = f"# BEGIN hashicluster e2e\n{other}# END hashicluster e2e\n"
    assert hosts_file.read_text() == ORIGINAL + e2e_block + BLOCK
    assert hosts("add", "--file", str(hosts_file), "--stack", "lab",
                 stdin="10.210.1.11 server2.demo\n").returncode == 0
    assert e2e_block in hosts_file.read_text()
    assert hosts("remove", "--file", str(hosts_file)).returncode == 0
    assert hosts_file.read_text() == ORIGINAL + e2e_block
    assert hosts("remove", "--file", str(hosts_file), "--stack=e2e").returncode == 0
    assert hosts_file.read_text() == ORIGINAL


@pytest.mark.parametrize("bad", [
    "10.210.1.10\n",                        # no name
    "root.server.demo 10.210.1.10\n",       # swapped
    "10.210.1.300 root.server.demo\n",      # not an address
    "10.210.1 root\n",
    "# BEGIN hashicluster lab\n",           # a marker smuggled in
    "10.210.1.10 root_server.demo\n",       # not a host name
    "10.210.1.10 root.server.demo; rm -rf /\n",
])
def test_bad_lines_are_refused_and_nothing_changes(hosts_file: Path, bad: str) -> None:
    res = hosts("add", "--file", str(hosts_file), stdin=LINES + bad)
    assert res.returncode == 1
    assert f'line 3 is not "ADDRESS NAME...": {bad.strip()}' in res.stderr
    assert "is unchanged" in res.stderr and "Fix: give one" in res.stderr
    assert hosts_file.read_text() == ORIGINAL


def test_ipv6_addresses_are_accepted(hosts_file: Path) -> None:
    res = hosts("add", "--file", str(hosts_file), stdin="fd00::10 root.server.demo root\n")
    assert res.returncode == 0, res.stderr
    assert "fd00::10 root.server.demo root\n" in hosts_file.read_text()


def test_no_lines_is_refused(hosts_file: Path) -> None:
    res = hosts("add", "--file", str(hosts_file), stdin="\n")
    assert res.returncode == 1 and "no lines to add" in res.stderr
    assert hosts_file.read_text() == ORIGINAL


def test_a_broken_block_is_left_for_a_person(hosts_file: Path) -> None:
    hosts_file.write_text(ORIGINAL + "# BEGIN hashicluster lab\n10.210.1.10 root\n")
    res = hosts("add", "--file", str(hosts_file), stdin=LINES)
    assert res.returncode == 1
    assert "has '# BEGIN hashicluster lab' without its '# END hashicluster lab' line" in res.stderr
    assert hosts_file.read_text() == ORIGINAL + "# BEGIN hashicluster lab\n10.210.1.10 root\n"


def test_mode_owner_and_inode_are_kept(hosts_file: Path) -> None:
    if os.geteuid() == 0:
        os.chown(hosts_file, 1234, 5678)
    before = hosts_file.stat()
    assert hosts("add", "--file", str(hosts_file), stdin=LINES).returncode == 0
    after = hosts_file.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid, after.st_ino) == (before.st_uid, before.st_gid,
                                                          before.st_ino)


def test_lines_from_the_stacks_output(hosts_file: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text('#!/bin/sh\necho "$*" >"$(dirname "$0")/args"\n'
                    "printf '[\\n  \"10.210.9.10 root.server.e2e root\",\\n"
                    "  \"10.210.9.20 frontend.lb.e2e frontend\"\\n]\\n'\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = hosts("add", "--file", str(hosts_file), "--stack", "e2e", "--pulumi", env=env)
    assert res.returncode == 0, res.stderr
    assert (bin_dir / "args").read_text() == "stack output hostsLines --json --stack e2e\n"
    assert hosts_file.read_text() == ORIGINAL + (
        "# BEGIN hashicluster e2e\n10.210.9.10 root.server.e2e root\n"
        "10.210.9.20 frontend.lb.e2e frontend\n# END hashicluster e2e\n")


def test_without_pulumi_it_says_how_to_do_without(hosts_file: Path) -> None:
    env = dict(os.environ, PATH="/usr/bin:/bin")
    if shutil.which("pulumi", path=env["PATH"]):
        pytest.skip("pulumi is installed system-wide here")
    res = hosts("add", "--file", str(hosts_file), "--pulumi", env=env)
    assert res.returncode == 1 and "pulumi is not on PATH" in res.stderr
    assert "pipe the lines in" in res.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "Add, replace or remove"),
    (["frobnicate"], "unknown action 'frobnicate'"),
    (["add", "--stack", "a b"], "invalid stack name 'a b'"),
    (["add", "--bogus"], "unknown option '--bogus'"),
    (["remove", "--file", "/nonexistent/hosts"], "/nonexistent/hosts does not exist"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    res = hosts(*args)
    assert res.returncode in (1, 2)
    assert message in res.stderr


def test_shellcheck_is_happy() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    res = subprocess.run([shellcheck, "--shell=sh", str(SCRIPT)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout
