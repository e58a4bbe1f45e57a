"""What a long install says while it runs: its activity with the elapsed time, and before a
build from source, how long it is likely to take."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.toolchain.helpers import make_pins, tool_table
from tests.waiting import wait_until
from toolchain import ensure as ensure_mod
from toolchain.ensure import Progress, activity, build_estimate, ensure, heartbeat
from toolchain.paths import Layout


def test_a_builds_activity_is_the_last_line_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("# fake 1.0.0 build started\n$ (cd /x && go build -v ...)\n")
    assert activity("build", log, tmp_path) == "starting go"
    log.write_text(log.read_text() + "github.com/hashicorp/consul/agent/consul\n\n")
    assert activity("build", log, tmp_path) == "github.com/hashicorp/consul/agent/consul"


def test_a_downloads_activity_is_the_bytes_so_far(tmp_path: Path) -> None:
    (tmp_path / "abc.zip.part").write_bytes(b"x" * 3 * 2**20)
    (tmp_path / "done.zip").write_bytes(b"x" * 2**20)  # a finished download is not counted
    assert activity("release", tmp_path / "none.log", tmp_path) == "3.0 MiB downloaded"


def test_the_heartbeat_ticks_plain_lines_off_a_terminal(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ensure_mod, "TICK_PLAIN", 0.05)
    log = tmp_path / "build.log"
    log.write_text("github.com/example/pkg\n")
    out = io.StringIO()
    progress = Progress(out)
    pin = make_pins(fake=tool_table()).tool("fake")
    with heartbeat(progress, pin, "build", log, tmp_path):
        wait_until("a tick naming the package", lambda: "github.com/example/pkg" in out.getvalue())
    line = out.getvalue().splitlines()[0]
    assert line.startswith("[fake 1.0.0] ") and line.endswith("s: github.com/example/pkg")
    assert "\r" not in out.getvalue()  # plain lines in CI and logs


def test_a_build_is_announced_with_its_likely_duration(fake_go: Path, layout: Layout) -> None:
    pins = make_pins(fake=tool_table())
    first = io.StringIO()
    [outcome] = ensure(layout, pins, ["fake"], "build", stream=first)
    assert outcome.action == "built", outcome.error
    assert first.getvalue().startswith("toolchain: 1 to build from source (fake): up to about 15 minutes")
    times = json.loads((layout.root / "build-times.json").read_text())
    assert list(times) == ["fake@1.0.0@amd64"]
    assert build_estimate(layout, [pins.tool("fake")]).endswith("as their last builds here")
    # A cached tool is not announced.
    again = io.StringIO()
    ensure(layout, pins, ["fake"], "build", stream=again)
    assert "to build from source" not in again.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_ticks_rewrite_one_line_and_events_clear_it() -> None:
    out = Terminal()
    progress = Progress(out)
    pin = make_pins(fake=tool_table()).tool("fake")
    progress.tick(pin, "1.0s: a")
    progress.tick(pin, "2.0s: b")
    progress.say(pin, "built in 2.5s")
    assert out.getvalue() == ("\r\033[K[fake 1.0.0] 1.0s: a\r\033[K[fake 1.0.0] 2.0s: b"
                              "\r\033[K[fake 1.0.0] built in 2.5s\n")
