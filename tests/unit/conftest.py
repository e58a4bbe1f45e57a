from __future__ import annotations

from pathlib import Path

import pytest

LAB_STACK = {
    "domain": "demo",
    "servers": "1",
    "clients": "3",
    "machines": '{"provider": "nspawn", "network": "10.210.1.0/24"}',
}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n")
    return path
