from __future__ import annotations

from pathlib import Path

import pytest

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
    return {"consul": BinaryPin("consul", "1.14.11", CONSUL_SHA),
            "nomad": BinaryPin("nomad", "1.6.3", NOMAD_SHA)}


def fake_binaries(spec: ClusterSpec) -> dict[str, str]:
    """Stands in for the toolchain's binaries to upload: this file will do as the asset."""
    return {"consul": __file__, "nomad": __file__} if spec.install.source == "upload" else {}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n")
    return path
