"""`python3 -m cluster.status [--stack NAME] [--json]`: the cluster's health at a glance.

Run where the stack's machines are reachable, with Pulumi's environment (backend, passphrase,
the toolchain on PATH): `./run status` does both (inside the lab network for the lab). It reads

- the stack's outputs (`pulumi stack output --json --show-secrets`): the machines, the API
  URLs, the CA and the read-only tokens `statusConsulToken` and `statusNomadToken`, kept in
  memory and sent only as the APIs' token headers;
- for a lab stack, the machines' state (`python3 -m lab status --json`);
- Consul's and Nomad's APIs (cluster/status/api.py);
- the stack's state (`pulumi stack export`, no secrets) for drift.

Exit status: 0 when all is well, 1 when anything is unhealthy (the report says what), 2 when
the stack's outputs cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cluster.status import api, health
from cluster.status.drift import agent_drift
from cluster.status.tables import render_report

ROOT = Path(__file__).resolve().parents[2]
ConsulReader = Callable[[api.Api], tuple[health.ConsulView, health.RoutesView]]


class StatusError(Exception):
    """The stack cannot be read at all (no outputs, no pulumi)."""


def _run_json(command: Sequence[str], what: str) -> Any:
    """The JSON that COMMAND prints; its stderr is passed on in the error (never stdout,
    which may hold secrets)."""
    try:
        done = subprocess.run(list(command), cwd=ROOT, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise StatusError(f"{command[0]} is not on PATH ({what}): run through ./run status") from None
    if done.returncode != 0:
        raise StatusError(f"{what} failed: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout or "null")
    except ValueError:
        raise StatusError(f"{what} printed no JSON") from None


def stack_outputs(stack: str) -> dict[str, Any]:
    """The stack's outputs, secrets included (in memory only)."""
    outputs = _run_json(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
                        f"pulumi stack output (stack {stack})")
    if not isinstance(outputs, dict) or "machines" not in outputs:
        raise StatusError(f"stack {stack} has no cluster outputs: is it up? (./run --stack {stack} up)")
    return outputs


def stack_state(stack: str) -> dict[str, Any]:
    """`pulumi stack export` (secrets stay encrypted); {} when it cannot be read."""
    try:
        state = _run_json(["pulumi", "stack", "export", "--stack", stack],
                          f"pulumi stack export (stack {stack})")
    except StatusError:
        return {}
    return state if isinstance(state, dict) else {}


def lab_machines() -> list[dict[str, Any]]:
    """Every lab machine's row of `python3 -m lab status --json`."""
    rows = _run_json([sys.executable, "-m", "lab", "status", "--json"], "python3 -m lab status --json")
    return rows if isinstance(rows, list) else []


def machines_of(stack: str, outputs: Mapping[str, Any], lab_rows: Sequence[Mapping[str, Any]] | None
                ) -> list[health.Machine]:
    """The stack's machines (its `machines` output), with the lab's state of each (the lab
    names them `<stack>-<node>`); without LAB_ROWS (not a lab stack) their state is unknown."""
    rows = {str(r.get("name")): r for r in lab_rows or []}
    made = []
    for name, m in (outputs.get("machines") or {}).items():
        machine = health.Machine(name=name, hostname=str(m.get("hostname", "")), role=str(m.get("role", "")),
                                 address=str(m.get("address", "")))
        if lab_rows is not None:
            row = rows.get(f"{stack}-{name}")
            machine.running = bool(row and row.get("running"))
            machine.memory_bytes = row.get("memory_bytes") if row else None
        made.append(machine)
    return made


def consul_api(outputs: Mapping[str, Any], servers: Sequence[str]) -> api.Api:
    return api.Api(api.bases(str(outputs["consulUi"]), servers), "X-Consul-Token",
                   outputs.get("statusConsulToken"), outputs.get("caCertificate"))


def nomad_api(outputs: Mapping[str, Any], servers: Sequence[str]) -> api.Api:
    return api.Api(api.bases(str(outputs["nomadUi"]), servers), "X-Nomad-Token",
                   outputs.get("statusNomadToken"), outputs.get("caCertificate"))


def _without_token(outputs: Mapping[str, Any], name: str) -> str | None:
    """Why the API is not read: a stack with ACLs (it has management tokens) but not yet the
    read-only token NAME (made before it existed)."""
    if name not in outputs and any(k.endswith("ManagementToken") for k in outputs):
        return f"no read-only token in the stack's outputs ({name}): `./run up` makes it"
    return None


def build_report(stack: str, outputs: Mapping[str, Any], lab_rows: Sequence[Mapping[str, Any]] | None,
                 state: Mapping[str, Any],
                 read_consul: ConsulReader = api.read_consul,
                 read_nomad: Callable[[api.Api], health.NomadView] = api.read_nomad) -> health.Report:
    """The report of one stack from its outputs, the lab's rows, its state and the APIs."""
    machines = machines_of(stack, outputs, lab_rows)
    servers = [m.address for m in machines if m.role == "server"]
    missing = _without_token(outputs, "statusConsulToken")
    if missing:
        consul, routes = health.ConsulView(error=missing), health.RoutesView(error=missing)
    else:
        consul, routes = read_consul(consul_api(outputs, servers))
    missing = _without_token(outputs, "statusNomadToken")
    nomad = health.NomadView(error=missing) if missing else read_nomad(nomad_api(outputs, servers))
    versions = {"consul": str(outputs.get("consulVersion", "")),
                "nomad": str(outputs.get("nomadVersion", ""))}
    return health.Report(stack, machines, consul, nomad, routes, versions, agent_drift(state))


def _is_lab(stack: str, machines: str) -> bool:
    if machines != "auto":
        return machines == "lab"
    from cluster.stackfile import StackFileError, load, machine_provider
    try:
        return machine_provider(load(ROOT / f"Pulumi.{stack}.yaml")) == "nspawn"
    except StackFileError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m cluster.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=os.environ.get("HASHICLUSTER_STACK", "lab"))
    parser.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    parser.add_argument("--machines", choices=["auto", "lab", "none"], default="auto",
                        help="where the machines' state comes from: the lab, none (unknown), or by "
                        "the stack's provider (default)")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(args.stack)
        lab_rows = lab_machines() if _is_lab(args.stack, args.machines) else None
    except StatusError as err:
        if args.json:
            print(json.dumps({"stack": args.stack, "healthy": False, "problems": [str(err)]}, indent=2))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    report = build_report(args.stack, outputs, lab_rows, stack_state(args.stack))
    print(json.dumps(report.as_json(), indent=2) if args.json else render_report(report))
    return 1 if report.problems() else 0
