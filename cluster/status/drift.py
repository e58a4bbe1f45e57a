"""Drift as the stack's state records it, for `./run status`.

The drift check's resources (type `...drift:AgentState`) keep, per machine, an output `drift`:
{product: [reasons]}. agent_drift() reads them from `pulumi stack export` JSON; a stack
without such a resource has not been checked, which is no error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cluster.status.health import Drift

AGENT_STATE_TYPE_SUFFIX = "drift:AgentState"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's mark of a secret value in an export


def _urn_name(urn: str) -> str:
    """The resource name at the end of a URN (`urn:pulumi:lab::hashicluster::T::client1`)."""
    return urn.rsplit("::", 1)[-1]


def _machine(resource: Mapping[str, Any]) -> str:
    """The machine a drift record is about: its own `machine` (or `node`) output or input,
    else its parent's name (the machine's component), else its own name."""
    for where in ("outputs", "inputs"):
        values = resource.get(where) or {}
        for key in ("machine", "node"):
            if isinstance(values.get(key), str) and values[key]:
                return str(values[key])
    parent = resource.get("parent")
    return _urn_name(str(parent or resource.get("urn", "")))


def agent_drift(state: Mapping[str, Any]) -> Drift:
    """Per machine, the `drift` output ({product: [reasons]}) of every resource whose type
    ends with `drift:AgentState`, from STATE (`pulumi stack export` JSON). Not checked when
    there is none."""
    resources = (state.get("deployment") or {}).get("resources") or []
    found = Drift()
    for resource in resources:
        if not str(resource.get("type", "")).endswith(AGENT_STATE_TYPE_SUFFIX):
            continue
        found.checked = True
        drift = (resource.get("outputs") or {}).get("drift") or {}
        machine = found.machines.setdefault(_machine(resource), {})
        if not isinstance(drift, dict) or SECRET_SIG in drift:
            continue  # a secret or another shape: nothing to show
        for product, reasons in drift.items():
            if isinstance(reasons, list):
                machine.setdefault(str(product), []).extend(str(r) for r in reasons)
            elif reasons:
                machine.setdefault(str(product), []).append(str(reasons))
    return found
