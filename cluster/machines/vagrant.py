"""The `vagrant` machine provider's pure parts: the generated Vagrantfile and the SSH
connection read back from `vagrant ssh-config`.

Not wired into the program yet: `make_machines` still refuses the provider until the whole
path (box, `vagrant up`, install, `vagrant destroy`) has been seen working.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.config import ClusterSpec
from cluster.render import render_template
from cluster.topology import nodes


def vagrantfile(spec: ClusterSpec) -> str:
    """The Vagrantfile of one stack: a VM per node with its hostname and private address."""
    assert spec.machines.vagrant is not None, "vagrantfile() needs the vagrant provider's settings"
    return render_template("vagrant/Vagrantfile.j2", stack=spec.stack, nodes=nodes(spec),
                   settings=spec.machines.vagrant)


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
        raise ValueError(f"`vagrant ssh-config {name}` gave no {', '.join(missing)}: is the VM up? "
                         f"Fix: `vagrant up {name}` in the stack's Vagrant directory")
    if not fields["port"].isdigit():
        raise ValueError(f"`vagrant ssh-config {name}` gave a port that is not a number: {fields['port']!r}")
    return SshConfig(fields["hostname"], int(fields["port"]), fields["user"], fields["identityfile"])
