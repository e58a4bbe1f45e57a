"""Markers for the box builder's tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds a Vagrant box and boots it under QEMU TCG (minutes, root)"
    )
