"""Pure: how what a probe found on a machine differs from what the program put there.

Each install step leaves a manifest on its machine (install.manifest_path): the sha256 of
every file and binary it put in place. The probe (templates/probe/observe.py) reports, per
product the machine should run (consul, nomad, cadvisor, nginx, consul-template), its systemd
unit's state and each manifest entry as ok, changed or missing; `drift` turns that into what
a person reads in `pulumi refresh` ("consul stopped (inactive)", "/etc/nomad.d/client.hcl
changed"). The manifest is the expectation, so a change of the stack's config (which the
install steps carry out and record) is never drift.

Each product also has a repair generation: a number that is stable while nothing drifts and
goes up by one when a drift of that product is to be repaired. It joins the triggers of the
product's install step, so `pulumi up` after a refresh that found drift re-runs exactly the
steps of what drifted (and, through them, the machine's roll step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PRODUCTS = ("consul", "nomad", "cadvisor", "nginx", "consul-template", "docker", "docker-registry",
            "dnsmasq")
MACHINE = "machine"  # the drift key for a machine that did not answer the probe

Observed = Mapping[str, Mapping[str, Any]]  # what observe.py prints: product -> its state
Drift = dict[str, list[str]]  # product (or MACHINE) -> what is wrong


def probe_request(products: Sequence[str], manifests: str) -> dict[str, Any]:
    """The argument of observe.py."""
    return {"products": list(products), "manifests": manifests}


def drift(products: Sequence[str], observed: Observed) -> Drift:
    """Per product of PRODUCTS, what OBSERVED shows wrong (products with nothing wrong are left
    out): a unit not active or not enabled, no manifest, a file or binary missing or changed."""
    found: Drift = {}
    for product in products:
        seen = observed.get(product, {})
        reasons = []
        active, enabled = seen.get("active", "unknown"), seen.get("enabled", "not-found")
        if active != "active":
            reasons.append(f"{product} {'failed' if active == 'failed' else 'stopped'} ({active})")
        if enabled != "enabled":
            reasons.append(f"{product} not enabled ({enabled})")
        if not seen.get("manifest"):
            reasons.append(f"{product}: no record of its install")
        reasons += [f"{path} {status}" for path, status in seen.get("files", {}).items() if status != "ok"]
        if reasons:
            found[product] = reasons
    return found


def unreachable(reason: str) -> Drift:
    return {MACHINE: [f"unreachable: {reason}"]}


def generation_key(product: str) -> str:
    """The output that holds PRODUCT's repair generation (`consul-template` -> `gen_consul_template`)."""
    return "gen_" + product.replace("-", "_")


def generations(outputs: Mapping[str, Any]) -> dict[str, int]:
    """Every product's repair generation in a probe's outputs (0 when not there yet)."""
    return {p: int(outputs.get(generation_key(p)) or 0) for p in PRODUCTS}


def repaired(current: Mapping[str, int], drifted: Iterable[str]) -> dict[str, int]:
    """The generations after a repair of DRIFTED: each of them one up, the others as they are."""
    up = set(drifted)
    return {p: current.get(p, 0) + (1 if p in up else 0) for p in PRODUCTS}


def summary(found: Drift) -> str:
    """One line for a person: `consul: consul stopped (inactive); nomad: ... changed`."""
    return "; ".join(f"{product}: {', '.join(reasons)}" for product, reasons in sorted(found.items()))
