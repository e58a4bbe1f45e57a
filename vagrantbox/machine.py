"""One Vagrant machine's life, as the `vagrant` machine provider drives it.

`python3 -m vagrantbox machine up|reload|down --dir DIR NAME`: each machine has a directory
of its own holding its Vagrantfile (read from stdin) and Vagrant's `.vagrant/` state, so
that creating or destroying one machine never depends on the others' definitions. `up` and
`reload` print one JSON object on stdout (how to reach the machine over SSH, and its host
key as read when it was created); Vagrant's own output goes to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from vagrantbox import spec
from vagrantbox.errors import BoxError

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


@dataclass(frozen=True)
class SshConfig:
    """How to reach one VM, as `vagrant ssh-config NAME` tells it."""

    host: str
    port: int
    user: str
    identity_file: str


def parse_ssh_config(text: str, name: str) -> SshConfig:
    """Read `vagrant ssh-config NAME` output; a missing field is an error naming the VM."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value and key.lower() not in fields:
            fields[key.lower()] = value.strip().strip('"')
    missing = [k for k in ("hostname", "user", "port", "identityfile") if k not in fields]
    if missing:
        raise BoxError(f"`vagrant ssh-config {name}` gave no {', '.join(missing)}: is the VM up? "
                       f"Fix: `vagrant up {name}` in the machine's Vagrant directory")
    if not fields["port"].isdigit():
        raise BoxError(f"`vagrant ssh-config {name}` gave a port that is not a number: {fields['port']!r}")
    return SshConfig(fields["hostname"], int(fields["port"]), fields["user"], fields["identityfile"])


def parse_host_key(text: str, name: str) -> str:
    """The `TYPE BASE64` of a public host key file's text; an error names the VM otherwise."""
    parts = text.strip().split()
    if len(parts) < 2 or not parts[0].startswith("ssh-"):
        raise BoxError(f"{name} has no readable SSH host key in {HOST_KEY_FILE}: the box must create "
                       "host keys on first boot (boxes from `python3 -m vagrantbox build` do)")
    return f"{parts[0]} {parts[1]}"


@dataclass(frozen=True)
class MachineInfo:
    """What `up` and `reload` print: everything the program needs to reach the machine."""

    name: str
    dir: str
    host: str
    port: int
    user: str
    private_key_path: str
    host_key_public: str


def vagrant(directory: Path, *args: str, capture: bool = False) -> str:
    """Run `vagrant ARGS` in DIRECTORY; its output goes to stderr unless captured."""
    if shutil.which("vagrant") is None:
        raise BoxError("vagrant is not installed. Fix: install Vagrant and its provider plugin "
                       "(Debian: apt-get install -y vagrant vagrant-libvirt)")
    cmd = ["vagrant", *args]
    env = dict(os.environ, VAGRANT_NO_COLOR="1", VAGRANT_CHECKPOINT_DISABLE="1")
    proc = subprocess.run(cmd, cwd=directory, env=env, text=True, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else sys.stderr,
                          stderr=subprocess.PIPE if capture else sys.stderr, check=False)
    if proc.returncode != 0:
        detail = f":\n{(proc.stderr or proc.stdout).strip()[-2000:]}" if capture else " (its output is above)"
        raise BoxError(f"`{' '.join(cmd)}` in {directory} failed{detail}")
    return proc.stdout if capture else ""


def require_box(box: str) -> None:
    """The project's own box cannot be downloaded: refuse early when it was never added."""
    if box != spec.DEFAULT_NAME:
        return  # other boxes come from Vagrant Cloud on first use
    listing = vagrant(Path.cwd(), "box", "list", "--machine-readable", capture=True)
    names = {line.split(",")[3] for line in listing.splitlines() if line.count(",") >= 3
             and line.split(",")[2] == "box-name"}
    if box not in names:
        raise BoxError(f"the Vagrant box {box} is not added. Fix: `python3 -m vagrantbox add` "
                       "(builds it from Debian packages, then `vagrant box add`)")


def _box_of(vagrantfile: str) -> str | None:
    for line in vagrantfile.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "config.vm.box":
            return value.strip().strip('"')
    return None


def _write_vagrantfile(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "Vagrantfile.tmp"
    tmp.write_text(text)
    tmp.replace(directory / "Vagrantfile")


# Run over `vagrant ssh` as the box's user: let the same key log in as root (the install steps
# run as root and copy files into root-owned directories, as on every other machine provider;
# Debian's sshd allows root by key only), then print the host key.
AUTHORIZE_ROOT = (
    "sudo install -d -m 700 /root/.ssh && "
    "sudo install -m 600 ~/.ssh/authorized_keys /root/.ssh/authorized_keys && "
    f"cat {HOST_KEY_FILE}"
)


def describe(directory: Path, name: str) -> MachineInfo:
    """How to reach a running machine as root: `vagrant ssh-config`, then its host key."""
    ssh = parse_ssh_config(vagrant(directory, "ssh-config", name, capture=True), name)
    host_key = parse_host_key(vagrant(directory, "ssh", name, "-c", AUTHORIZE_ROOT, capture=True), name)
    key_path = Path(ssh.identity_file)
    if not key_path.is_absolute():
        key_path = directory / key_path
    return MachineInfo(name=name, dir=str(directory.absolute()), host=ssh.host, port=ssh.port,
                       user="root", private_key_path=str(key_path), host_key_public=host_key)


def up(directory: Path, name: str, provider: str, vagrantfile: str) -> MachineInfo:
    """Write the machine's Vagrantfile and `vagrant up` it (a no-op when it is running)."""
    box = _box_of(vagrantfile)
    if box:
        require_box(box)
    _write_vagrantfile(directory, vagrantfile)
    vagrant(directory, "up", "--provider", provider, name)
    return describe(directory, name)


def reload(directory: Path, name: str, provider: str, vagrantfile: str) -> MachineInfo:
    """Apply a changed Vagrantfile (CPUs, memory) to a machine: `vagrant reload` keeps its disk."""
    if not (directory / ".vagrant" / "machines" / name).is_dir():
        return up(directory, name, provider, vagrantfile)
    _write_vagrantfile(directory, vagrantfile)
    vagrant(directory, "reload", name)
    return describe(directory, name)


# `vagrant status --machine-readable` states: running; not_created (nothing to boot); any
# other (poweroff, shutoff, paused, saved, ...) is a machine that is there but does not run.
RUNNING_STATES = {"running": "running", "not_created": "gone"}


def parse_status(text: str, name: str) -> str:
    """running, stopped or gone, from `vagrant status NAME --machine-readable` (CSV lines
    TIMESTAMP,TARGET,TYPE,DATA...)."""
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 4 and fields[1] == name and fields[2] == "state":
            return RUNNING_STATES.get(fields[3], "stopped")
    raise BoxError(f"`vagrant status {name} --machine-readable` printed no state for {name}")


def power_state(directory: Path, name: str) -> str:
    """Whether the machine runs: running, stopped (there, not running) or gone."""
    if not (directory / "Vagrantfile").is_file():
        return "gone"
    return parse_status(vagrant(directory, "status", name, "--machine-readable", capture=True), name)


def down(directory: Path, name: str) -> None:
    """`vagrant destroy -f NAME`, then remove the machine's directory. Nothing there: nothing to do."""
    if (directory / "Vagrantfile").is_file():
        vagrant(directory, "destroy", "-f", name)
    shutil.rmtree(directory, ignore_errors=True)


def to_json(info: MachineInfo) -> str:
    return json.dumps(asdict(info), sort_keys=True)
