"""bench/cli.py and the runner's parts that need no lab: settings, the event-log tail,
the choice of the median run, the `./run bench` entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import cli, runner
from bench.critpath import CriticalPath
from bench.eventlog import parse
from bench.report import PathReport
from bench.workspace import EventTail

from ..runscript import needs_root, run_script

ROOT = Path(__file__).resolve().parents[2]


def test_the_help_names_the_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--help"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    assert "./run bench" in out
    for option in ("--runs", "--quick", "--json", "--markdown"):
        assert option in out


@needs_root
def test_run_bench_sets_up_then_runs_the_benchmark_with_its_arguments(tmp_path: Path) -> None:
    """`./run bench ARGS` (on a copy, with a recording Python): setup first, then `bench run`."""
    proc, calls = run_script(tmp_path, "bench", "--quick", "--runs", "2")
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "source=unset args=-m bench run --quick --runs 2", calls
    assert "source=unset args=-m toolchain ensure" in calls[:-1], "setup ran before"


def test_run_help_names_bench(tmp_path: Path) -> None:
    proc, calls = run_script(tmp_path, "help")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s*\./run bench\b", proc.stdout, re.M), proc.stdout
    assert calls == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["run"], {"runs": 3, "load_seconds": 10.0, "quick": False, "concurrency": 8}),
    (["run", "--quick"], {"runs": 1, "load_seconds": 3.0, "quick": True}),
    (["run", "--quick", "--runs", "2"], {"runs": 2, "load_seconds": 3.0}),
    (["run", "--runs", "5", "--load-seconds", "20", "--concurrency", "16"],
     {"runs": 5, "load_seconds": 20.0, "concurrency": 16}),
])
def test_settings_from_the_command_line(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                        expected: dict[str, Any]) -> None:
    seen: list[runner.Settings] = []

    def fake_main(settings: runner.Settings, json_out: Path | None, markdown_out: Path | None) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(runner, "main", fake_main)
    assert cli.main(argv) == 0
    assert {k: getattr(seen[0], k) for k in expected} == expected


@pytest.mark.parametrize("argv", [["run", "--runs", "0"], ["run", "--load-seconds", "-1"],
                                  ["wrk", "http://10.210.4.20/", "--connections", "x"]])
def test_bad_command_lines_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2


def test_traffic_outside_the_lab_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "http://192.0.2.1/", "--timeout", "0"]) == 1
    assert "neither a lab address" in capsys.readouterr().err
    assert cli.main(["wrk", "http://192.0.2.1/", "--seconds", "1"]) == 1


def test_the_tail_notes_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventTail(path) as tail:
        path.write_text('{"timestamp": 5, "preludeEvent": {}}\n{"timestamp": 6, "cancel')
    assert len(tail.records) == 2
    seen, line = tail.records[0]
    assert seen is not None and line == '{"timestamp": 5, "preludeEvent": {}}'
    assert tail.records[1] == (None, '{"timestamp": 6, "cancel')  # the line never ended
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        parse(tail.records)


def test_the_median_run_is_the_middle_one_by_wall_time() -> None:
    def path(wall: float) -> PathReport:
        return PathReport(f"run {wall}", wall=wall, span=wall, path=CriticalPath(()))

    assert runner.median_run([]) is None
    assert runner.median_run([path(70), path(40), path(55)]) == path(55)
    assert runner.median_run([path(70), path(40)]) == path(40)


def test_pulumi_gets_runs_parallelism_where_run_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.worktree import parallel_args

    monkeypatch.setenv("HASHICLUSTER_PARALLEL", "32")
    assert parallel_args(["up", "--yes"]) == parallel_args(["destroy"]) == ["--parallel", "32"]
    assert parallel_args(["stack", "output"]) == parallel_args([]) == []
    monkeypatch.delenv("HASHICLUSTER_PARALLEL")
    assert parallel_args(["up"]) == []
