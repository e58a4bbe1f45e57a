"""Session-wide test order: fast tests first, then the end-to-end tests on the shared lab
cluster, and last the test that destroys that cluster.

Every test that needs no machine, no VM and no minutes is marked `quick` here (those that do
carry one of NOT_QUICK, registered in pyproject.toml): `./run test -m quick`.

In CI (`CI=true`) a skipped test is a failure: CI runs on a machine where `./run test` has
installed every tool the tests need, so a skip there means a test silently did not run.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

NOT_QUICK = ("e2e", "lab", "vagrant", "hostkinds", "long", "slow")


# First: `-m` selects among the items once they carry `quick`.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in NOT_QUICK):
            item.add_marker(pytest.mark.quick)

    def key(item: pytest.Item) -> tuple[bool, bool]:
        return ("tests/e2e/" in item.nodeid, item.get_closest_marker("destroys_cluster") is not None)

    items.sort(key=key)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_reason(report: pytest.TestReport) -> str:
    """The reason pytest recorded for a skip (its longrepr is (file, line, reason))."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI ({skip_reason(report)}): CI must run every test; "
                           "make `./run test` install what it needs")
