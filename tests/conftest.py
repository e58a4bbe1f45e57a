"""Session-wide test order: fast tests first, then the end-to-end tests on the shared lab
cluster, and last the test that destroys that cluster."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destroys_cluster: tears the shared lab cluster down")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def key(item: pytest.Item) -> tuple[bool, bool]:
        return ("tests/e2e/" in item.nodeid, item.get_closest_marker("destroys_cluster") is not None)

    items.sort(key=key)
