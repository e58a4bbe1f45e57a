"""The markers: every one registered in pyproject.toml, and `quick` on exactly the tests that
carry none of the markers for machines, VMs or minutes (tests/conftest.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import NOT_QUICK

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
REGISTERED = {line.split(":")[0] for line in SETTINGS["markers"]}
TESTS = """
import pytest

def test_plain():
    pass

@pytest.mark.e2e
def test_cluster():
    pass

@pytest.mark.long
@pytest.mark.parametrize("n", [1, 2])
def test_minutes(n):
    pass

class TestGroup:
    pytestmark = pytest.mark.lab

    def test_machine(self):
        pass
"""


def test_every_marker_is_registered_with_strict_markers() -> None:
    assert {*NOT_QUICK, "quick", "destroys_cluster"} <= REGISTERED
    assert "--strict-markers" in SETTINGS["addopts"].split()


@pytest.mark.parametrize(("expression", "selected"), [
    ("quick", ["test_plain"]),
    ("not quick", ["test_cluster", "test_minutes[1]", "test_minutes[2]", "TestGroup::test_machine"]),
    ("not e2e", ["test_plain", "test_minutes[1]", "test_minutes[2]", "TestGroup::test_machine"]),
])
def test_quick_is_every_test_without_a_machine_vm_or_minutes_marker(
        pytester: pytest.Pytester, expression: str, selected: list[str]) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    markers = "".join(f"\n    {line}" for line in SETTINGS["markers"])
    pytester.makeini(f"[pytest]\naddopts = --strict-markers\nmarkers ={markers}\n")
    pytester.makepyfile(test_demo=TESTS)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-m", expression)
    assert result.ret == 0, result.stdout.str()
    collected = [line.removeprefix("test_demo.py::") for line in result.stdout.lines
                 if line.startswith("test_demo.py::")]
    assert collected == selected
