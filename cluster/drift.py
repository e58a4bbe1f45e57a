"""Pure: what a machine should have of what the program installs, and how what a probe found
there differs from it.

The expected state of a machine, per product (consul, nomad, cadvisor, nginx,
consul-template): its systemd unit running and enabled, and the sha256 of each file and
binary its install step puts in place. The probe (templates/probe/observe.py) reports the
units' states and the files' digests; `drift` compares them and says, per product, what is
wrong in words a person reads in `pulumi refresh` ("stopped", "/etc/nomad.d/client.hcl
changed").

Each product also has a repair generation: a number that is stable while nothing drifts and
goes up by one when a drift of that product is to be repaired. It joins the triggers of the
product's install step, so `pulumi up` after a refresh that found drift re-runs exactly the
steps of what drifted (and, through them, the machine's roll step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.render import File

PRODUCTS = ("consul", "nomad", "cadvisor", "nginx", "consul-template")
MACHINE = "machine"  # the drift key for a machine that did not answer the probe

Expected = dict[str, dict[str, Any]]  # product -> {"unit": str, "files": {path: sha256}}
Observed = dict[str, Any]  # what observe.py prints
Drift = dict[str, list[str]]  # product (or MACHINE) -> what is wrong


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expected_product(product: str, files: Sequence[File], binary: Mapping[str, str] | None = None
                     ) -> dict[str, Any]:
    """What PRODUCT should look like on a machine: its unit; the digest of each of its FILES
    (plain and secret alike); its BINARY, {"path", "sha256"} when its digest is known here (the
    uploaded binary) or {"path", "sha256_in"}: the file where the install step recorded it
    (a binary unpacked from the vendor's zip on the machine)."""
    expected: dict[str, Any] = {"unit": product,
                                "files": dict(sorted((f.path, sha256(f.content)) for f in files))}
    if binary:
        expected["binary"] = dict(binary)
    return expected


def probe_request(expected: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """The argument of observe.py: every unit, file and binary of EXPECTED, and the records of
    installed binaries to read."""
    binaries = [e["binary"] for e in expected.values() if "binary" in e]
    return {"units": [e["unit"] for e in expected.values()],
            "files": sorted({*(path for e in expected.values() for path in e["files"]),
                             *(b["path"] for b in binaries)}),
            "read": sorted(b["sha256_in"] for b in binaries if "sha256_in" in b)}


def _file_reason(path: str, got: str | None, want: str | None) -> str | None:
    if got is None:
        return f"{path} missing"
    if want is None:
        return f"{path}: no record of the binary installed"
    return f"{path} changed" if got != want else None


def drift(expected: Mapping[str, Mapping[str, Any]], observed: Observed) -> Drift:
    """Per product of EXPECTED, what OBSERVED shows wrong (products with nothing wrong are left
    out): a unit not active or not enabled, a file or binary missing or changed."""
    found: Drift = {}
    files, records = observed.get("files", {}), observed.get("read", {})
    for product, want in expected.items():
        reasons = []
        unit = observed.get("units", {}).get(want["unit"], {})
        active, enabled = unit.get("active", "unknown"), unit.get("enabled", "not-found")
        if active != "active":
            reasons.append(f"{want['unit']} {'failed' if active == 'failed' else 'stopped'} ({active})")
        if enabled != "enabled":
            reasons.append(f"{want['unit']} not enabled ({enabled})")
        checks = [(path, digest) for path, digest in want["files"].items()]
        if "binary" in want:
            b = want["binary"]
            checks.append((b["path"], b.get("sha256") or records.get(b.get("sha256_in", ""))))
        reasons += [r for path, digest in checks if (r := _file_reason(path, files.get(path), digest))]
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
