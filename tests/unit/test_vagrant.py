"""The vagrant provider's pure parts: the Vagrantfile it writes, the ssh-config it reads."""

from __future__ import annotations

import pytest

from cluster import config as cfg
from cluster.machines.vagrant import parse_ssh_config, vagrantfile

from .conftest import fake_pins

DEV = {"machines": '{"provider": "vagrant", "driver": "qemu", "cpus": 1, "memory": 768}',
       "clients": "2"}


def test_vagrantfile_defines_every_node_with_its_address() -> None:
    text = vagrantfile(cfg.load(DEV, "dev", fake_pins))
    for name, hostname, address in [("root-server", "root.server.demo", "192.168.56.10"),
                                    ("frontend-lb", "frontend.lb.demo", "192.168.56.20"),
                                    ("client2", "client2.demo", "192.168.56.32")]:
        block = text.split(f'config.vm.define "{name}" do |m|', 1)[1].split("\n  end\n", 1)[0]
        assert f'm.vm.hostname = "{hostname}"' in block
        assert f'ip: "{address}"' in block
        assert 'v.driver = "qemu"' in block and "v.cpus = 1" in block and "v.memory = 768" in block
    assert text.count("config.vm.define") == 4
    assert 'config.vm.box = "debian/bookworm64"' in text
    assert text.rstrip().endswith("end")


def test_virtualbox_gets_no_libvirt_driver() -> None:
    raw = dict(DEV, machines='{"provider": "vagrant", "vagrantProvider": "virtualbox"}')
    text = vagrantfile(cfg.load(raw, "dev", fake_pins))
    assert 'm.vm.provider "virtualbox"' in text and "v.driver" not in text


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
    with pytest.raises(ValueError, match=r"gave no hostname, user, port, identityfile.*vagrant up client3"):
        parse_ssh_config("", "client3")
