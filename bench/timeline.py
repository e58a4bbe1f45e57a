"""A `pulumi up` as a picture: one row per machine, one bar per step (when it started, how long
it ran), the critical path's steps marked. Written as SVG with matplotlib.

`machines_of` reads which machine each resource belongs to from `pulumi stack export` (its
parent chain up to a machine component); `rows` lays the steps out (pure); `write_svg` draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.eventlog import short_name

MACHINE_TYPE = "hashicluster:machines:"
CLUSTER_ROW = "cluster"  # steps of no machine: secrets, jobs, the stack


def machines_of(export: Mapping[str, Any]) -> dict[str, str]:
    """Resource name -> the name of the machine component it sits under (its own name for a
    machine); resources under none are left out."""
    resources = export.get("deployment", {}).get("resources") or []
    parent = {r["urn"]: r.get("parent", "") for r in resources}
    kind = {r["urn"]: r.get("type", "") for r in resources}
    result = {}
    for urn in parent:
        at = urn
        while at and not kind.get(at, "").startswith(MACHINE_TYPE):
            at = parent.get(at, "")
        if at:
            result[short_name(urn)] = short_name(at)
    return result


@dataclass(frozen=True)
class Bar:
    row: str
    name: str
    start: float
    duration: float
    critical: bool


SKIPPED_TYPES = ("pulumi:providers:", "pulumi:pulumi:Stack", MACHINE_TYPE)  # no work of their own


def rows(steps: Iterable[Mapping[str, Any]], machines: Mapping[str, str],
         critical: Iterable[str]) -> list[Bar]:
    """The bars of STEPS (the bench's `durations()`: name, type, op, start_s, duration_s): steps
    that did something and finished, on their machine's row."""
    on_path = set(critical)
    return [Bar(machines.get(s["name"], CLUSTER_ROW), s["name"], float(s["start_s"]), float(s["duration_s"]),
                s["name"] in on_path)
            for s in steps
            if s.get("op") != "same" and s.get("duration_s") is not None
            and not str(s.get("type", "")).startswith(SKIPPED_TYPES)]


def row_order(bars: Sequence[Bar]) -> list[str]:
    """Rows top to bottom: machines in the order their first step started, the cluster row last."""
    first: dict[str, float] = {}
    for bar in bars:
        first[bar.row] = min(first.get(bar.row, bar.start), bar.start)
    return sorted(first, key=lambda row: (row == CLUSTER_ROW, first[row], row))


def lanes(bars: Sequence[Bar]) -> list[list[Bar]]:
    """BARS (of one row) in lanes where none overlaps another: each bar in the first lane free
    when it starts."""
    result: list[list[Bar]] = []
    for bar in sorted(bars, key=lambda b: (b.start, b.name)):
        lane = next((lane for lane in result if lane[-1].start + lane[-1].duration <= bar.start), None)
        if lane is None:
            result.append([bar])
        else:
            lane.append(bar)
    return result


def write_svg(bars: Sequence[Bar], title: str, out: Path) -> None:
    """Draw BARS to OUT (SVG): one band per machine, its steps in lanes where they run at once;
    steps in grey, the critical path's in red and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    bands = [(row, lanes([b for b in bars if b.row == row])) for row in row_order(bars)]
    total = sum(len(band) for _, band in bands) + len(bands) - 1  # a gap between bands
    fig, ax = plt.subplots(figsize=(11, 0.28 * total + 1.8))
    ticks, labels = [], []
    y = total
    for row, band in bands:
        top = y
        for lane in band:
            y -= 1
            for bar in lane:
                color = "#c0392b" if bar.critical else "#95a5a6"
                ax.broken_barh([(bar.start, max(bar.duration, 0.05))], (y + 0.1, 0.8), facecolors=color,
                               edgecolor="white", linewidth=0.4)
                if bar.critical and bar.duration >= 1.0:
                    ax.text(bar.start + bar.duration / 2, y + 0.5, bar.name.removeprefix(f"{row}-"),
                            ha="center", va="center", fontsize=6, color="white", clip_on=True)
        ticks.append((top + y) / 2)
        labels.append(row)
        y -= 1
    ax.set_yticks(ticks, labels)
    ax.set_ylim(-0.2, total + 0.2)
    ax.set_xlabel("seconds since the first event of the update")
    ax.set_xlim(0, max((b.start + b.duration for b in bars), default=1.0) * 1.01)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", linewidth=0.3)
    ax.legend(handles=[Patch(color="#c0392b", label="on the critical path"),
                       Patch(color="#95a5a6", label="other steps")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    # No date and a fixed id salt: the same run gives the same file.
    matplotlib.rcParams["svg.hashsalt"] = "hashicluster"
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)
