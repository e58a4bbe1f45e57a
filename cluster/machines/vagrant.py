"""The `vagrant` machine provider: one Vagrant VM per node, the classic workstation target.

Each machine has a directory of its own (`.hashicluster/vagrant/<stack>/<node>/` in the
project) with a Vagrantfile rendered for that node alone, so creating or destroying one VM
never depends on the others' definitions. Create runs `vagrant up NAME`, a changed
Vagrantfile runs `vagrant reload NAME`, delete runs `vagrant destroy -f NAME`, all through
`python3 -m vagrantbox machine`, which prints the VM's SSH address, user, key and the host
key read when it was created (checked on every later connection).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import local, remote

from cluster.config import ClusterSpec, VagrantSettings
from cluster.machines import Machine, read_private_key
from cluster.render import render_template
from cluster.services.drift import MachinePower
from cluster.topology import Node

VAGRANT_ROOT = Path(".hashicluster") / "vagrant"


def detect_driver(cpuinfo: str, kvm_device: bool) -> str:
    """kvm where the CPU offers hardware virtualisation (vmx/svm) and /dev/kvm exists, else qemu.

    /dev/kvm alone is not enough: some hosts have a paravirtual KVM that cannot boot stock
    guests, and their CPUs show no vmx/svm flag.
    """
    flags = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return "kvm" if kvm_device and flags & {"vmx", "svm"} else "qemu"


def resolve_driver(settings: VagrantSettings) -> str:
    """The libvirt driver to write into Vagrantfiles: the configured one, or detected on `auto`."""
    if settings.driver != "auto":
        return settings.driver
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return detect_driver(cpuinfo, os.path.exists("/dev/kvm"))


def machine_dir(stack: str, node: Node) -> Path:
    """The machine's Vagrant directory, relative to the project."""
    return VAGRANT_ROOT / stack / node.name


def vagrantfile(spec: ClusterSpec, node: Node, driver: str) -> str:
    """The Vagrantfile of one node: its hostname, private address, CPUs and memory for its role."""
    settings = spec.machines.vagrant
    assert settings is not None, "vagrantfile() needs the vagrant provider's settings"
    role = node.role.value
    return render_template("vagrant/Vagrantfile.j2", stack=spec.stack, node=node, settings=settings,
                           cpus=settings.cpus[role], memory=settings.memory[role], driver=driver)


def _read_key(path: str) -> str:
    return read_private_key(path, "the Vagrant SSH key (Vagrant writes it on `vagrant up`)",
                            "`pulumi up --replace` the machine's `-vagrant` resource to recreate it")


class VagrantMachine(pulumi.ComponentResource):
    """One Vagrant VM with its own directory and Vagrantfile."""

    def __init__(self, spec: ClusterSpec, node: Node, driver: str, after: list[pulumi.Resource]) -> None:
        super().__init__("hashicluster:machines:VagrantMachine", node.name, None)
        settings = spec.machines.vagrant
        assert settings is not None
        text = vagrantfile(spec, node, driver)
        where = shlex.quote(str(machine_dir(spec.stack, node)))
        verb = f"python3 -m vagrantbox machine {{}} {node.name} --dir {where}"
        provider = f" --provider {shlex.quote(settings.provider)}"
        self.vagrant = local.Command(
            f"{node.name}-vagrant",
            create=verb.format("up") + provider,
            update=verb.format("reload") + provider,
            delete=verb.format("down"),
            stdin=text,  # a changed Vagrantfile runs `update` (vagrant reload)
            # ...but `vagrant reload` cannot change a VM's box: a new box makes a new VM.
            environment={"HASHICLUSTER_BOX": settings.box},
            opts=pulumi.ResourceOptions(parent=self, depends_on=after, replace_on_changes=["environment"],
                                        delete_before_replace=True),
        )
        # A refresh that finds the VM stopped makes the next up boot it, from its Vagrantfile.
        self.power = MachinePower(f"{node.name}-power", kind="vagrant", machine=node.name,
                                  boot=f"cd {where} && vagrant up {shlex.quote(node.name)}",
                                  directory=str(machine_dir(spec.stack, node)),
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vagrant]))
        info: pulumi.Output[dict[str, Any]] = self.vagrant.stdout.apply(json.loads)
        self.ssh_host: pulumi.Output[str] = info.apply(lambda i: str(i["host"]))
        self.connection: pulumi.Output[remote.ConnectionArgs] = info.apply(
            lambda i: remote.ConnectionArgs(
                host=i["host"],
                user=i["user"],
                port=i["port"],
                private_key=_read_key(i["private_key_path"]),  # the provider keeps `connection` secret
                host_key=i["host_key_public"],
                dial_error_limit=20,
            ))
        self.register_outputs({"sshHost": self.ssh_host})


def machines(spec: ClusterSpec, nodes: list[Node]) -> list[Machine]:
    """Every node's VM. The first is made alone: it adds the box to libvirt's storage pool and
    creates the networks, which concurrent `vagrant up`s in other directories would race for;
    the rest start together once it is up (and are destroyed before it)."""
    settings = spec.machines.vagrant
    assert settings is not None
    driver = resolve_driver(settings)
    result: list[Machine] = []
    first: list[pulumi.Resource] = []
    for node in nodes:
        # On the first VM's own `vagrant` command, not its component: a component stands for
        # all its children, and the first machine also runs gates that wait for the others.
        vm = VagrantMachine(spec, node, driver, after=first)
        first = first or [vm.vagrant]
        ssh = f"cd {machine_dir(spec.stack, node)} && vagrant ssh {node.name}"
        result.append(Machine(node=node, resource=vm, connection=vm.connection, ssh=ssh, power=vm.power))
    return result
