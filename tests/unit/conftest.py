from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from cluster.binaries import upload_key
from cluster.config import BinaryPin, ClusterSpec, InstallSource

LAB_STACK = {
    "domain": "demo",
    "servers": "1",
    "clients": "3",
    "machines": '{"provider": "nspawn", "network": "10.210.1.0/24"}',
    "install": '{"source": "upload"}',
}
CONSUL_SHA = "c" * 64
NOMAD_SHA = "d" * 64


def fake_pins(source: InstallSource) -> dict[str, BinaryPin]:
    """Stands in for the toolchain's pins (unit tests do not need a built toolchain)."""
    mirror = "https://releases.hashicorp.com"
    return {
        "consul": BinaryPin("consul", "1.14.11", CONSUL_SHA,
                            mirror + "/consul/{version}/consul_{version}_linux_amd64.zip"),
        "nomad": BinaryPin("nomad", "1.6.3", NOMAD_SHA,
                           mirror + "/nomad/{version}/nomad_{version}_linux_amd64.zip"),
        "consul-template": BinaryPin("consul-template", "0.42.1", "a" * 64),
        "cadvisor": BinaryPin("cadvisor", "0.49.1", "b" * 64, "https://example.invalid/cadvisor-v{version}",
                              "binary"),
    }


def fake_binaries(spec: ClusterSpec, arches: Sequence[str] = ("amd64",)) -> dict[str, str]:
    """Stands in for the toolchain's binaries to upload: this file will do as the asset."""
    products = ("consul", "nomad", "consul-template", "cadvisor")
    return ({upload_key(p, arch): __file__ for p in products for arch in arches}
            if spec.install.source == "upload" else {})


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n")
    return path
