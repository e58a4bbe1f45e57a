"""bench/report.py: the text table, Markdown and JSON of a benchmark's results."""

from __future__ import annotations

import json

import pytest

from bench.critpath import CriticalPath, PathStep
from bench.report import Figure, PathReport, Report, align, format_value, markdown, text, to_json


def sample() -> Report:
    path = CriticalPath((PathStep("root-server-lab", "u::a", "create", 9.0, 0.0),
                         PathStep("root-server-consul", "u::b", "create", 10.25, 7.0),
                         PathStep("job-fib", "u::c", "create", 8.0, 0.5)))
    return Report(
        facts={"commit": "abc123", "cores (nproc)": "2"},
        settings={"runs": 3},
        figures=[Figure("cold_up", "cold pulumi up", "s", [70.0, 68.25, 75.5]),
                 Figure("lb_rps", "fib through the LB: requests/s", "req/s", [1236.4, 1100.0, 1302.0]),
                 Figure("lb_direct_rps", "requests/s ratio LB / direct", "x", [7.1]),
                 Figure("failover_replacement", "failover: replacement", "s", [])],
        paths=[PathReport("cold up, run 2", wall=70.0, span=69.0, path=path)],
        notes=["a note"])


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (None, "s", "-"), (float("nan"), "ms", "-"),
    (70.04, "s", "70.0"), (3.456, "s", "3.46"), (0.0, "s", "0.00"),
    (44.35, "ms", "44.4"), (2.6536, "ms", "2.65"),
    (1235.9, "req/s", "1236"), (12.5, "req/s", "12.5"), (3.0, "count", "3"), (1.5, "count", "1.5"),
    (7.106, "x", "7.11"), (12.5, "%", "12.5"),
])
def test_values_are_shown_with_a_precision_fit_for_their_unit(value: float | None, unit: str,
                                                              shown: str) -> None:
    assert format_value(value, unit) == shown


def test_align_pads_columns_and_drops_trailing_spaces() -> None:
    lines = align([["a", "bb", "1"], ["ccc", "", "22"]], right=frozenset({2}))
    assert lines == ["a    bb   1", "ccc      22"]
    assert align([]) == []


def test_the_text_table_has_one_aligned_row_per_figure() -> None:
    out = text(sample())
    table = out.split("\n\n")[2].splitlines()
    assert table[0].split() == ["figure", "unit", "median", "min", "max", "runs"]
    row = table[1]
    assert row.startswith("cold pulumi up") and row.split()[-4:] == ["70.0", "68.2", "75.5", "3"]
    # The numbers are right-aligned: every row ends in the same column.
    assert len({len(line) for line in table}) == 1
    assert table[4].split()[-4:] == ["-", "-", "-", "0"]


def test_the_text_shows_facts_paths_and_notes() -> None:
    out = text(sample())
    assert "commit:" in out and "abc123" in out
    assert ("cold up, run 2: critical path 27.2 s in 3 steps, wall 70.0 s (wall / critical path 2.57), "
            "engine events over 69.0 s:") in out
    path_lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert path_lines[0].split() == ["step", "op", "duration", "s", "waited", "s"]
    assert path_lines[2].split() == ["root-server-consul", "create", "10.2", "7.00"]
    assert out.rstrip().endswith("- a note")


def test_long_paths_show_their_longest_steps_in_order() -> None:
    steps = tuple(PathStep(f"s{i}", f"u::{i}", "create", float(i % 5), 0.0) for i in range(20))
    report = PathReport("x", wall=60.0, span=59.0, path=CriticalPath(steps), shown=4)
    assert [s.name for s in report.top()] == ["s4", "s9", "s14", "s19"]
    assert "(the 4 longest)" in text(Report({}, {}, [], [report]))


def test_markdown_has_github_tables() -> None:
    out = markdown(sample())
    assert out.startswith("# hashicluster bench\n")
    assert "| figure | unit | median | min | max | runs |" in out
    assert "| --- | --- | ---: | ---: | ---: | ---: |" in out
    assert "| cold pulumi up | s | 70.0 | 68.2 | 75.5 | 3 |" in out
    assert "## cold up, run 2" in out and "| root-server-consul | create | 10.2 | 7.00 |" in out


def test_json_keeps_every_run_and_the_summaries() -> None:
    doc = json.loads(json.dumps(to_json(sample())))
    cold = doc["figures"][0]
    assert cold["values"] == [70.0, 68.25, 75.5]
    assert (cold["median"], cold["min"], cold["max"]) == (70.0, 68.25, 75.5)
    assert doc["figures"][3]["median"] is None
    path = doc["critical_paths"][0]
    assert path["critical_path_s"] == 27.25
    assert path["wall_over_critical_path"] == pytest.approx(2.5688, abs=1e-4)
    assert [s["name"] for s in path["steps"]] == ["root-server-lab", "root-server-consul", "job-fib"]
    assert doc["facts"]["commit"] == "abc123" and doc["settings"] == {"runs": 3}


def test_a_path_without_weight_has_no_ratio() -> None:
    assert PathReport("x", wall=5.0, span=4.0, path=CriticalPath(())).ratio is None
