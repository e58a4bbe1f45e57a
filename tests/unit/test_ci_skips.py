"""In CI a skip is a failure (tests/conftest.py); elsewhere it stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()
TESTS = """
import pytest

def test_skips():
    pytest.skip("shellcheck is not installed")

@pytest.mark.skipif(True, reason="needs qemu-system-x86")
def test_skipif():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
"""


@pytest.fixture()
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_demo=TESTS)
    return pytester


def test_in_ci_every_skip_fails_and_names_its_reason(suite: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess("-rA")
    # a skip in the call fails the test; a skipif (decided at setup) errors it
    result.assert_outcomes(failed=1, errors=1, passed=1, xfailed=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skipped in CI (shellcheck is not installed)*",
                                 "*skipped in CI (needs qemu-system-x86)*"])


def test_outside_ci_a_skip_stays_a_skip(suite: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    suite.runpytest_subprocess().assert_outcomes(skipped=2, passed=1, xfailed=1)
