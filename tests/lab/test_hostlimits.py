"""The inotify allowance the lab raises before a machine starts (on a stand-in knob file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import hostlimits
from lab.errors import LabError


@pytest.fixture()
def knob(tmp_path: Path) -> Path:
    path = tmp_path / "max_user_instances"
    path.write_text("128\n")
    return path


def test_the_kernel_default_is_raised(knob: Path) -> None:
    assert hostlimits.ensure_inotify_instances(20, knob) == 1024
    assert knob.read_text() == "1024\n"


def test_more_machines_get_more(knob: Path) -> None:
    assert hostlimits.ensure_inotify_instances(40, knob) == 128 + 32 * 40
    assert hostlimits.wanted_inotify_instances(40) > hostlimits.wanted_inotify_instances(30)


def test_a_higher_limit_is_never_lowered(knob: Path) -> None:
    knob.write_text("8192\n")
    assert hostlimits.ensure_inotify_instances(5, knob) == 8192
    assert knob.read_text() == "8192\n"


def test_a_limit_that_cannot_be_raised_names_the_fix(knob: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only /proc/sys (a container without the privilege): mocked by a refusing write."""
    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(LabError, match=r"from 128 to 1024 \(Read-only file system\)") as err:
        hostlimits.ensure_inotify_instances(1, knob)
    assert "sysctl -w fs.inotify.max_user_instances=1024" in str(err.value.fix)
