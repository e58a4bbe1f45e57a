"""The vagrant provider's pure parts: the Vagrantfiles it writes, the driver it picks, and what
it reads back from Vagrant (ssh-config, the host key)."""

from __future__ import annotations

import pytest

from cluster import config as cfg
from cluster.machines.vagrant import detect_driver, machine_dir, vagrantfile
from cluster.topology import nodes
from vagrantbox.errors import BoxError
from vagrantbox.machine import _box_of, parse_host_key, parse_ssh_config

from .conftest import fake_pins

DEV = {"machines": '{"provider": "vagrant", "driver": "qemu", "cpus": 1, "memory": {"client": 768}}',
       "clients": "2"}


def _files(raw: dict[str, str], driver: str = "qemu") -> dict[str, str]:
    spec = cfg.load(raw, "dev", fake_pins)
    return {n.name: vagrantfile(spec, n, driver) for n in nodes(spec)}


def test_each_node_gets_a_vagrantfile_of_its_own() -> None:
    files = _files(DEV)
    assert list(files) == ["root-server", "frontend-lb", "client1", "client2"]
    for name, hostname, address, memory in [("root-server", "root.server.demo", "192.168.56.10", 1024),
                                            ("frontend-lb", "frontend.lb.demo", "192.168.56.20", 512),
                                            ("client2", "client2.demo", "192.168.56.32", 768)]:
        text = files[name]
        assert text.count("config.vm.define") == 1 and f'config.vm.define "{name}" do |m|' in text
        assert f'm.vm.hostname = "{hostname}"' in text
        assert f'ip: "{address}"' in text
        assert "v.cpus = 1" in text and f"v.memory = {memory}" in text
        assert 'v.driver = "qemu"' in text
        assert 'v.default_prefix = "hashicluster-dev-"' in text
        assert 'libvirt__network_name: "hashicluster-dev", libvirt__forward_mode: "none"' in text
        assert 'config.vm.box = "debian/bookworm64"' in text
        assert text.rstrip().endswith("end")


def test_role_defaults_apply_where_the_config_sets_none() -> None:
    spec = cfg.load({"machines": '{"provider": "vagrant"}'}, "dev", fake_pins)
    assert spec.machines.vagrant is not None
    assert dict(spec.machines.vagrant.cpus) == cfg.VAGRANT_CPUS
    assert dict(spec.machines.vagrant.memory) == cfg.VAGRANT_MEMORY
    assert spec.machines.vagrant.driver == "auto"


@pytest.mark.parametrize(("value", "key", "problem"), [
    ('{"server": 0}', "hashicluster:machines.cpus.server", "whole number from 1 to 64"),
    ('{"database": 2}', "hashicluster:machines.cpus.database", "not a machine role"),
    ('"two"', "hashicluster:machines.cpus", "whole number"),
])
def test_bad_per_role_values_name_the_key(value: str, key: str, problem: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load({"machines": f'{{"provider": "vagrant", "cpus": {value}}}'}, "dev", fake_pins)
    assert err.value.key == key and problem in err.value.problem


def test_virtualbox_gets_no_libvirt_settings() -> None:
    raw = dict(DEV, machines='{"provider": "vagrant", "vagrantProvider": "virtualbox"}')
    text = _files(raw)["client1"]
    assert 'm.vm.provider "virtualbox"' in text
    assert "v.driver" not in text and "libvirt__" not in text and "default_prefix" not in text


def test_the_detected_driver_is_written() -> None:
    assert 'v.driver = "kvm"' in _files(DEV, driver="kvm")["client1"]


@pytest.mark.parametrize(("flags", "kvm_device", "driver"), [
    ("fpu vme vmx sse2", True, "kvm"),
    ("fpu svm sse2", True, "kvm"),
    ("fpu vmx sse2", False, "qemu"),  # no /dev/kvm
    ("fpu sse2 hypervisor", True, "qemu"),  # a /dev/kvm that cannot run stock guests
])
def test_driver_detection(flags: str, kvm_device: bool, driver: str) -> None:
    cpuinfo = f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    assert detect_driver(cpuinfo, kvm_device) == driver


def test_machines_live_in_directories_of_their_own() -> None:
    spec = cfg.load(DEV, "dev", fake_pins)
    dirs = {str(machine_dir("dev", n)) for n in nodes(spec)}
    names = ("root-server", "frontend-lb", "client1", "client2")
    assert dirs == {f".hashicluster/vagrant/dev/{n}" for n in names}


def test_the_box_is_read_from_a_vagrantfile() -> None:
    assert _box_of(_files(DEV)["client1"]) == "debian/bookworm64"


SSH_CONFIG = """Host client1
  HostName 192.168.121.45
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /work/.vagrant/machines/client1/libvirt/private_key
  IdentitiesOnly yes
  LogLevel FATAL
"""


def test_ssh_config_is_read() -> None:
    ssh = parse_ssh_config(SSH_CONFIG, "client1")
    assert (ssh.host, ssh.port, ssh.user) == ("192.168.121.45", 22, "vagrant")
    assert ssh.identity_file.endswith("client1/libvirt/private_key")


def test_ssh_config_of_a_vm_that_is_down_names_it() -> None:
    with pytest.raises(BoxError, match=r"gave no hostname, user, port, identityfile.*vagrant up client3"):
        parse_ssh_config("", "client3")


def test_host_key_is_type_and_key_only() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFSKe9fTZNw5wDis3g8Q3ciz root@bookworm\n"
    assert parse_host_key(line, "client1") == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFSKe9fTZNw5wDis3g8Q3ciz"
    with pytest.raises(BoxError, match="client1 has no readable SSH host key"):
        parse_host_key("cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file\n", "client1")
