"""Pure: the benchmark's results as an aligned text table, Markdown and JSON.

A Report holds the machine's facts, the settings, every Figure (one number measured in
each run) and the critical paths to show. Each figure is printed as the median of its runs
with the smallest and largest value; a figure with no value (its measurement failed) shows
`-` and the notes say why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.critpath import CriticalPath, PathStep
from bench.stats import Summary

SCHEMA = 1


@dataclass
class Figure:
    """One measured quantity and its value in each run."""

    key: str
    label: str
    unit: str  # "s", "ms", "req/s", "x" (a ratio), "%" or "count"
    values: list[float] = field(default_factory=list)

    def summary(self) -> Summary | None:
        return Summary.of(self.values) if self.values else None


@dataclass
class PathReport:
    """The critical path of one operation of one run, and the times to compare it with."""

    title: str
    wall: float  # seconds the command took
    span: float  # seconds from the first event of the operation to the last
    path: CriticalPath
    shown: int = 12  # how many of the longest steps the text and Markdown list

    @property
    def steps(self) -> tuple[PathStep, ...]:
        return self.path.steps

    @property
    def total(self) -> float:
        return self.path.total

    @property
    def ratio(self) -> float | None:
        return self.wall / self.total if self.total > 0 else None

    def top(self) -> list[PathStep]:
        """The `shown` longest steps, in path order."""
        return self.path.top(self.shown)


@dataclass
class Report:
    """Everything one benchmark run prints and writes."""

    facts: dict[str, str]
    settings: dict[str, Any]
    figures: list[Figure]
    paths: list[PathReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # JSON only: what each run saw


def format_value(value: float | None, unit: str) -> str:
    """A value for the table: `-` for none; precision by unit and size."""
    if value is None or math.isnan(value):
        return "-"
    if unit in ("req/s", "count"):
        return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.1f}"
    if unit == "x":
        return f"{value:.2f}"
    if unit == "ms":
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def align(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows of cells as lines of aligned columns (two spaces apart; RIGHT holds the indexes
    of right-aligned columns). Trailing spaces are dropped."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


def figure_rows(figures: Sequence[Figure]) -> list[list[str]]:
    """Header and one row per figure: label, unit, median, min, max, runs."""
    rows = [["figure", "unit", "median", "min", "max", "runs"]]
    for fig in figures:
        s = fig.summary()
        rows.append([fig.label, fig.unit,
                     format_value(s.median if s else None, fig.unit),
                     format_value(s.low if s else None, fig.unit),
                     format_value(s.high if s else None, fig.unit),
                     str(s.runs if s else 0)])
    return rows


def path_rows(path: PathReport) -> list[list[str]]:
    """Header and one row per shown step: name, op, duration, wait before it."""
    rows = [["step", "op", "duration s", "waited s"]]
    rows += [[s.name, s.op, format_value(s.duration, "s"), format_value(s.wait, "s")] for s in path.top()]
    return rows


def _path_heading(path: PathReport) -> str:
    ratio = format_value(path.ratio, "x")
    return (f"{path.title}: critical path {format_value(path.total, 's')} s in {len(path.steps)} steps, "
            f"wall {format_value(path.wall, 's')} s (wall / critical path {ratio}), "
            f"engine events over {format_value(path.span, 's')} s")


def text(report: Report) -> str:
    """The plain-text report: facts, the figures table, the critical paths, the notes."""
    out = ["hashicluster bench", ""]
    out += align([[f"{k}:", v] for k, v in report.facts.items()])
    out += ["", *align(figure_rows(report.figures), right=frozenset({2, 3, 4, 5}))]
    for path in report.paths:
        shown = "" if len(path.top()) == len(path.steps) else f" (the {len(path.top())} longest)"
        out += ["", _path_heading(path) + shown + ":"]
        out += ["  " + line for line in align(path_rows(path), right=frozenset({2, 3}))]
    if report.notes:
        out += ["", "notes:"] + [f"- {note}" for note in report.notes]
    return "\n".join(out) + "\n"


def md_table(rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    rule = ["---:" if i in right else "---" for i in range(len(rows[0]))]
    return [line(rows[0]), line(rule), *(line(r) for r in rows[1:])]


def markdown(report: Report) -> str:
    """The same report as Markdown (GitHub tables)."""
    out = ["# hashicluster bench", ""]
    out += [f"- **{k}**: {v}" for k, v in report.facts.items()]
    out += ["", *md_table(figure_rows(report.figures), frozenset({2, 3, 4, 5}))]
    for path in report.paths:
        out += ["", f"## {path.title}", "", _path_heading(path) + ".", ""]
        out += md_table(path_rows(path), frozenset({2, 3}))
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(out) + "\n"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def path_json(path: PathReport) -> dict[str, Any]:
    """One critical path, JSON-ready."""
    return {"title": path.title, "wall_s": _round(path.wall), "span_s": _round(path.span),
            "critical_path_s": _round(path.total), "wall_over_critical_path": _round(path.ratio),
            "steps": [{"name": s.name, "urn": s.urn, "op": s.op, "duration_s": _round(s.duration),
                       "wait_s": _round(s.wait)} for s in path.steps]}


def to_json(report: Report) -> dict[str, Any]:
    """The report as a JSON-ready document: every run's value, not only the summaries, and
    the details of each run."""
    figures = []
    for fig in report.figures:
        s = fig.summary()
        figures.append({"key": fig.key, "label": fig.label, "unit": fig.unit,
                        "values": [_round(v) for v in fig.values],
                        "median": _round(s.median if s else None),
                        "min": _round(s.low if s else None), "max": _round(s.high if s else None)})
    return {"schema": SCHEMA, "facts": report.facts, "settings": report.settings,
            "figures": figures, "critical_paths": [path_json(p) for p in report.paths],
            "notes": report.notes, "details": report.details}
