"""Pure: the steps of one Pulumi operation, from its engine event log.

`pulumi up --event-log FILE` (a flag Pulumi shows only with PULUMI_DEBUG_COMMANDS=true)
writes one JSON object per line, each with a `sequence`, a `timestamp` (Unix seconds, whole
seconds only) and one event. Two of them bracket every resource step:

    {"sequence": 359, "timestamp": 1795623289,
     "resourcePreEvent": {"metadata": {"op": "create", "urn": "urn:...::client2-nomad",
                                       "type": "command:remote:Command", "new": {"custom": true, ...}}}}
    {"sequence": 371, "timestamp": 1795623295, "resOutputsEvent": {"metadata": {...the same...}}}

and a `summaryEvent` ends the operation (`result`, `resourceChanges`, `durationSeconds`).

Whole seconds are coarse next to steps that take one or two, so the runner also notes when
each line appeared in the file (it polls the file while Pulumi runs; Pulumi writes each event
with one unbuffered write). A record is then (that time or None, the line); the time of an
event is the noted time when there is one, else its `timestamp`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Record = tuple[float | None, str]
PRE = "resourcePreEvent"
OUTPUTS = "resOutputsEvent"
SUMMARY = "summaryEvent"


class EventLogError(ValueError):
    """A line of an event log is not what Pulumi writes."""


def short_name(urn: str) -> str:
    """The resource name at the end of a URN: `urn:pulumi:s::p::t::client2-nomad` -> client2-nomad."""
    return urn.rsplit("::", 1)[-1]


@dataclass
class Step:
    """One resource's step: when the engine started it (pre event) and finished it (outputs)."""

    urn: str
    type: str
    ops: list[str]
    custom: bool
    start: float
    end: float | None = None

    @property
    def name(self) -> str:
        return short_name(self.urn)

    @property
    def provider(self) -> bool:
        """A provider resource: configured, not a step of the cluster."""
        return self.type.startswith("pulumi:providers:")

    @property
    def op(self) -> str:
        """The step's operation; for a replacement the first one that is not `same`."""
        return next((op for op in self.ops if op != "same"), self.ops[0])

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None when the step never finished (a failed operation)."""
        return None if self.end is None else max(0.0, self.end - self.start)


@dataclass
class EventLog:
    """Every step of one operation, and the bounds and summary of the operation."""

    steps: dict[str, Step] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None
    summary: dict[str, Any] | None = None

    @property
    def result(self) -> str | None:
        """`succeeded`, `failed` ... from the summary event; None when the log has none."""
        return None if self.summary is None else str(self.summary.get("result"))

    @property
    def changes(self) -> dict[str, int]:
        """Steps per operation other than `same`, from the summary: {"update": 1}."""
        counts = (self.summary or {}).get("resourceChanges") or {}
        return {op: int(n) for op, n in counts.items() if op != "same" and n}

    @property
    def span(self) -> float:
        """Seconds from the first event to the last."""
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    def changed_steps(self, providers: bool = False) -> list[Step]:
        """The steps that did something, in the order they started; providers only when
        asked for (a config change updates the dynamic provider `pulumi-python`, which is
        given the whole stack config, without it doing anything)."""
        return sorted((s for s in self.steps.values() if s.op != "same" and (providers or not s.provider)),
                      key=lambda s: s.start)

    def durations(self) -> list[dict[str, Any]]:
        """Every step: name, op, start (seconds after the first event) and duration."""
        first = self.first or 0.0
        return [{"name": s.name, "type": s.type, "op": s.op, "start_s": round(s.start - first, 3),
                 "duration_s": None if s.duration is None else round(s.duration, 3)}
                for s in sorted(self.steps.values(), key=lambda s: s.start)]


def _event_time(obj: Mapping[str, Any], observed: float | None, number: int) -> float:
    if observed is not None:
        return observed
    stamp = obj.get("timestamp")
    if not isinstance(stamp, int | float):
        raise EventLogError(f"event log line {number} has no numeric `timestamp`")
    return float(stamp)


def _metadata(obj: Mapping[str, Any], kind: str, number: int) -> Mapping[str, Any]:
    metadata = obj[kind].get("metadata") if isinstance(obj[kind], dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("urn"), str):
        raise EventLogError(f"event log line {number}: {kind} without metadata.urn")
    return metadata


def _custom(metadata: Mapping[str, Any]) -> bool:
    state = metadata.get("new") or metadata.get("old") or {}
    return bool(state.get("custom", False))


def parse(records: Iterable[Record]) -> EventLog:
    """The steps of an event log: RECORDS are (time the line was seen or None, line).

    A resource with several steps in one operation (a replacement) keeps the start of its
    first and the end of its last.
    """
    log = EventLog()
    for number, (observed, line) in enumerate(records, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise EventLogError(f"event log line {number} is not JSON ({err.msg}): {line[:80]!r}") from None
        if not isinstance(obj, dict):
            raise EventLogError(f"event log line {number} is not a JSON object")
        when = _event_time(obj, observed, number)
        log.first = when if log.first is None else min(log.first, when)
        log.last = when if log.last is None else max(log.last, when)
        if PRE in obj:
            meta = _metadata(obj, PRE, number)
            urn = meta["urn"]
            step = log.steps.get(urn)
            if step is None:
                log.steps[urn] = Step(urn=urn, type=str(meta.get("type", "")), ops=[str(meta.get("op"))],
                                      custom=_custom(meta), start=when)
            else:
                step.ops.append(str(meta.get("op")))
        elif OUTPUTS in obj:
            meta = _metadata(obj, OUTPUTS, number)
            step = log.steps.get(meta["urn"])
            if step is not None:
                step.end = when
        elif SUMMARY in obj and isinstance(obj[SUMMARY], dict):
            log.summary = obj[SUMMARY]
    return log


def parse_lines(lines: Iterable[str]) -> EventLog:
    """The steps of an event log read from a file, timed by the engine's own timestamps."""
    return parse((None, line) for line in lines)
