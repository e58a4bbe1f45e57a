"""Pure: the critical path of one Pulumi operation, from the stack's export and its event log.

The graph: one node per resource of `pulumi stack export`; a resource waits for each of its
`dependencies`, its `parent` and its `provider` (`URN::ID`). The weight of a node is the
duration of its step in the event log (see eventlog.py); components (`custom` false: the
stack, the machines) do no work of their own and weigh nothing, and a resource without a
finished step weighs nothing either.

The critical path is the heaviest chain through that graph: how long the operation would
take if every step that does not wait for another ran at once and nothing else cost time.
`wall / critical path` says how close the real run came to that (1.0: as close as can be).
Each step on the path also gets its `wait`: from the end of the latest of its dependencies
(or from the first event, for a step without any) to its own start, time the engine or the
program spent before starting it.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.eventlog import EventLog, Step


class ExportError(ValueError):
    """The export is not what `pulumi stack export` writes."""


@dataclass(frozen=True)
class Node:
    """A resource of the export and the resources it waits for."""

    urn: str
    custom: bool
    deps: tuple[str, ...]


@dataclass(frozen=True)
class PathStep:
    """One step on the critical path."""

    name: str
    urn: str
    op: str
    duration: float
    wait: float


@dataclass(frozen=True)
class CriticalPath:
    """The heaviest chain of steps, first to last."""

    steps: tuple[PathStep, ...]

    @property
    def total(self) -> float:
        """The sum of the durations on the path, in seconds."""
        return sum(s.duration for s in self.steps)

    @property
    def waits(self) -> float:
        """The sum of the waits before the steps on the path, in seconds."""
        return sum(s.wait for s in self.steps)

    def top(self, count: int) -> list[PathStep]:
        """The COUNT longest steps, in path order."""
        keep = {i for i, _ in sorted(enumerate(self.steps), key=lambda p: -p[1].duration)[:count]}
        return [s for i, s in enumerate(self.steps) if i in keep]


def provider_urn(reference: str) -> str:
    """The URN of a provider reference `URN::ID`."""
    return reference.rsplit("::", 1)[0]


def graph(export: Mapping[str, Any]) -> dict[str, Node]:
    """The nodes of a `pulumi stack export` document."""
    try:
        resources = export["deployment"].get("resources") or []
    except (KeyError, AttributeError, TypeError):
        raise ExportError("not a stack export: no deployment.resources") from None
    nodes: dict[str, Node] = {}
    for res in resources:
        urn = res.get("urn")
        if not isinstance(urn, str):
            raise ExportError("a resource of the export has no urn")
        deps = [d for d in res.get("dependencies") or [] if isinstance(d, str)]
        if res.get("parent"):
            deps.append(res["parent"])
        if res.get("provider"):
            deps.append(provider_urn(res["provider"]))
        nodes[urn] = Node(urn=urn, custom=bool(res.get("custom", False)), deps=tuple(dict.fromkeys(deps)))
    return nodes


def reverse(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """The graph of a destroy: a resource is deleted after everything that depends on it (its
    dependents, its children, the resources its provider serves)."""
    dependents: dict[str, list[str]] = {urn: [] for urn in nodes}
    for node in nodes.values():
        for dep in node.deps:
            if dep in dependents:
                dependents[dep].append(node.urn)
    return {urn: Node(urn=urn, custom=node.custom, deps=tuple(dependents[urn]))
            for urn, node in nodes.items()}


def _weight(node: Node, step: Step | None) -> float:
    if not node.custom or step is None or step.duration is None:
        return 0.0
    return step.duration


def critical_path(nodes: Mapping[str, Node], log: EventLog) -> CriticalPath:
    """The heaviest chain through NODES, weighed by the steps of LOG.

    Resources of the log that the export lacks (deleted ones) are nodes without
    dependencies. Ties go to the chain that ends later, then to the smaller URN.
    """
    every = dict(nodes)
    for urn, step in log.steps.items():
        every.setdefault(urn, Node(urn=urn, custom=step.custom, deps=()))
    order = graphlib.TopologicalSorter({u: [d for d in n.deps if d in every] for u, n in every.items()})
    try:
        ordered = list(order.static_order())
    except graphlib.CycleError as err:
        raise ExportError(f"the dependencies form a cycle: {err.args[1]}") from None
    best: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for urn in ordered:
        node = every[urn]
        deps = sorted((d for d in node.deps if d in best), key=lambda d: (-best[d], -_end(log, d), d))
        prev[urn] = deps[0] if deps else None
        best[urn] = _weight(node, log.steps.get(urn)) + (best[deps[0]] if deps else 0.0)
    if not best:
        return CriticalPath(())
    last = min(best, key=lambda u: (-best[u], -_end(log, u), u))
    chain: list[str] = []
    cursor: str | None = last
    while cursor is not None:
        chain.append(cursor)
        cursor = prev[cursor]
    chain.reverse()
    return CriticalPath(tuple(_path_step(every, every[u], log) for u in chain
                              if every[u].custom and u in log.steps))


def _end(log: EventLog, urn: str) -> float:
    step = log.steps.get(urn)
    return step.end if step is not None and step.end is not None else float("-inf")


def _ready(nodes: Mapping[str, Node], log: EventLog, urn: str) -> float | None:
    """When a dependency let its dependents start: a resource once its step ended, a
    component once it was registered (its outputs come only after its children's)."""
    step = log.steps.get(urn)
    if step is None:
        return None
    node = nodes.get(urn)
    return step.end if node is not None and node.custom else step.start


def _path_step(nodes: Mapping[str, Node], node: Node, log: EventLog) -> PathStep:
    step = log.steps[node.urn]
    ready = [t for t in (_ready(nodes, log, d) for d in node.deps) if t is not None]
    since = max(ready) if ready else (log.first if log.first is not None else step.start)
    return PathStep(step.name, node.urn, step.op, _weight(node, step), max(0.0, step.start - since))
