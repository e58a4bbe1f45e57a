"""`./run bench --clients 3,10,25`: what a cluster costs as it grows. For each size, one lab
cluster of its own (the stack's `hashicluster:clients` set to the size), measured once:

  cold `pulumi up` (then fib through the load balancer), no-op `pulumi preview`, no-op
  `pulumi up`, adding one client (`clients` N+1, `pulumi up`), removing it again (`clients` N),
  `pulumi destroy`; the peak memory of the controller (each pulumi command's process tree:
  the CLI, the program, the providers, their SSH sessions) and of the host (lab machines
  included), over all of them.

Each figure is also given as its ratio to the first size's. `measure_size` runs the commands;
the rest is pure (the tables) or draws (`write_svg`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.eventlog import EventLog
from bench.report import align, format_value, md_table
from bench.workspace import BenchError, Workspace

# key, label, unit; the times first (the chart draws those), then the memory.
FIGURES = [
    ("cold_up", "cold pulumi up", "s"),
    ("noop_preview", "no-op pulumi preview", "s"),
    ("noop_up", "no-op pulumi up", "s"),
    ("add_client", "add one client: pulumi up", "s"),
    ("remove_client", "remove one client: pulumi up", "s"),
    ("destroy", "pulumi destroy", "s"),
    ("controller_mib", "controller peak memory", "MiB"),
    ("host_mib", "host peak memory in use", "MiB"),
]
TIMES = [key for key, _, unit in FIGURES if unit == "s"]
LABELS = {key: label for key, label, _ in FIGURES}


@dataclass
class Size:
    """One cluster size's figures (a missing key: that step failed) and what it noted."""

    clients: int
    figures: dict[str, float] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)  # per command: its peaks
    notes: list[str] = field(default_factory=list)


def parse_sizes(text: str) -> tuple[int, ...]:
    """`3,10,25` -> (3, 10, 25): client counts, at least one, each from 1 up, none twice."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--clients {text!r}: give client counts separated by commas, "
                         "e.g. 3,10,25") from None
    if any(n < 1 for n in sizes) or len(set(sizes)) != len(sizes):
        raise ValueError(f"--clients {text!r}: each count must be 1 or more, and each given once")
    return sizes


def measure_size(ws: Workspace, clients: int, probe_fib: Callable[[], float],
                 log: Callable[[str], None]) -> Size:
    """One cluster of CLIENTS clients, from nothing and back to nothing (see the module's doc).
    PROBE_FIB waits until fib answers through the load balancer (raises BenchError if not)."""
    size = Size(clients)

    def timed(key: str, label: str, *args: str) -> EventLog | None:
        log(f"{clients} clients: {LABELS[key]}")
        done, events = ws.pulumi(f"{label} {clients}", *args, timeout=3600, events=True)
        size.figures[key] = done.wall
        size.memory[key] = done.memory.as_dict()
        return events

    def no_op(key: str, label: str, *args: str) -> None:
        events = timed(key, label, *args)
        if events is None or events.changes:
            seen = events.changes if events else "no event log"
            size.notes.append(f"the {LABELS[key]} was not a no-op: {seen}")

    def set_clients(count: int) -> None:
        ws.pulumi("config set", "config", "set", "hashicluster:clients", str(count), timeout=120)

    set_clients(clients)
    timed("cold_up", "cold up", "up", "--yes", "--skip-preview")
    probe_fib()
    no_op("noop_preview", "noop preview", "preview")
    no_op("noop_up", "noop up", "up", "--yes", "--skip-preview")
    set_clients(clients + 1)
    timed("add_client", "add client", "up", "--yes", "--skip-preview")
    set_clients(clients)
    timed("remove_client", "remove client", "up", "--yes", "--skip-preview")
    timed("destroy", "destroy", "destroy", "--yes", "--skip-preview")
    peaks = size.memory.values()
    size.figures["controller_mib"] = max(m["controller_peak_mib"] for m in peaks)
    size.figures["host_mib"] = max(m["host_peak_mib"] for m in peaks)
    return size


def ratio(size: Size, first: Size, key: str) -> float | None:
    value, base = size.figures.get(key), first.figures.get(key)
    return value / base if value is not None and base else None


def rows(sizes: Sequence[Size]) -> list[list[str]]:
    """Header and one row per figure: its value for each size, then its ratio to the first
    size's (`x`) for every other size."""
    if not sizes:
        return []
    first = sizes[0]
    header = ["figure", "unit", *(f"{s.clients} clients" for s in sizes),
              *(f"{s.clients} / {first.clients}" for s in sizes[1:])]
    table = [header]
    for key, label, unit in FIGURES:
        table.append([label, unit, *(format_value(s.figures.get(key), unit) for s in sizes),
                      *(format_value(ratio(s, first, key), "x") for s in sizes[1:])])
    return table


def text(sizes: Sequence[Size]) -> str:
    table = rows(sizes)
    out = ["", "scaling: one cluster per size, each figure measured once", ""]
    out += align(table, right=frozenset(range(2, len(table[0])))) if table else []
    out += [f"- {s.clients} clients: {note}" for s in sizes for note in s.notes]
    return "\n".join(out) + "\n"


def markdown(sizes: Sequence[Size], picture: str | None) -> str:
    table = rows(sizes)
    out = ["", "## Scaling", "", "One lab cluster per size, each figure measured once; the last columns "
           "are each figure's ratio to the first size's.", ""]
    out += md_table(table, frozenset(range(2, len(table[0])))) if table else []
    out += [f"- {s.clients} clients: {note}" for s in sizes for note in s.notes]
    if picture:
        out += ["", f"![What a cluster costs by its number of clients]({picture})"]
    return "\n".join(out) + "\n"


def to_json(sizes: Sequence[Size]) -> list[dict[str, Any]]:
    first = sizes[0] if sizes else None
    return [{"clients": s.clients, "figures": {k: round(v, 3) for k, v in s.figures.items()},
             "ratios": {k: round(r, 3) for k in s.figures
                        if first and (r := ratio(s, first, k)) is not None},
             "memory": s.memory, "notes": s.notes} for s in sizes]


def _panel(ax: Any, sizes: Sequence[Size], keys: Sequence[str], unit: str, title: str) -> None:
    """One line per figure of KEYS over the client counts."""
    for key in keys:
        points = [(s.clients, s.figures[key]) for s in sizes if key in s.figures]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=LABELS[key])
    ax.set_xlabel("clients")
    ax.set_ylabel(unit)
    ax.set_xticks([s.clients for s in sizes])
    ax.set_ylim(bottom=0)
    ax.grid(linewidth=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)


def write_svg(sizes: Sequence[Size], out: Path) -> None:
    """The times by number of clients (one line each), and the peak memory beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (times, mem) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    _panel(times, sizes, TIMES, "seconds", "time by number of clients")
    _panel(mem, sizes, ["controller_mib", "host_mib"], "MiB", "peak memory")
    fig.tight_layout()
    matplotlib.rcParams["svg.hashsalt"] = "hashicluster"
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)


def measure(ws: Workspace, sizes: Sequence[int], probe_fib: Callable[[], float],
            log: Callable[[str], None], remove_machines: Callable[[], list[str]]) -> list[Size]:
    """Every size in turn; a size that fails is noted, its machines removed, and the next runs."""
    done = []
    for clients in sizes:
        try:
            done.append(measure_size(ws, clients, probe_fib, log))
        except BenchError as err:
            log(f"error at {clients} clients: {err}")
            failed = Size(clients, notes=[f"failed: {str(err).splitlines()[0]}"])
            try:
                ws.pulumi("destroy after failure", "destroy", "--yes", "--skip-preview", timeout=3600)
            except BenchError as second:
                failed.notes.append(f"its destroy failed too: {str(second).splitlines()[0]}")
            left = remove_machines()
            if left:
                failed.notes.append(f"left lab machines removed with lab down: {left}")
            done.append(failed)
    return done
