"""Drift as Pulumi sees it: two dynamic resources per machine whose `read` looks at the
machine, so that `pulumi refresh` shows what changed behind the program's back and
`pulumi up` after it repairs that, and only that.

- `MachinePower` (`<machine>-power`, after the machine): read asks the machine provider
  whether the machine runs (the lab's status, `vagrant status`). A machine found stopped (or
  killed, as by a power cut) makes a change, and its update boots it with its disk (the
  machine's own `lab up` / `vagrant up`). A machine found gone (its disk and SSH host key
  with it) is not made anew behind the stack's back: the update fails and says so.
- `AgentState` (`<machine>-state`, after the machine, before its install steps): read runs
  templates/probe/observe.py over SSH: the agents' units, and their files and binaries against
  the manifests the install steps left (cluster/drift.py). Its inputs are only the connection
  and the products the machine runs, so a config change never updates it (which would make
  the preview show every step of the machine). Drift found makes a change; its update
  looks again (the machine may just have been booted) and counts one more generation for
  each product still drifted. Each install step has its product's generation in its
  triggers: the step runs again, and with it the machine's roll step, so a repair follows
  the same rules as a change (Consul and Nomad restarted one machine at a time).

A clean machine reads as it was: no change, an empty preview. Without a refresh nothing is
looked at (the outputs are those the last update recorded).

Pulumi runs these providers in a separate process from a dill pickle that refers to this
module by name (like cluster/jobs.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
from pulumi import dynamic

from cluster import drift as machine_drift
from cluster import sshcmd
from cluster.install import MANIFESTS

OBSERVE = Path(__file__).resolve().parents[2] / "templates" / "probe" / "observe.py"
PROBE_TIMEOUT = 60  # seconds for the whole probe
RUNNING, STOPPED, GONE = "running", "stopped", "gone"


# ---------------------------------------------------------------------------------------------
# The machine: running, stopped or gone


def lab_power(name: str) -> str:
    """The state of the lab machine NAME (asked in this process: a refresh asks once per
    machine, all at once)."""
    from lab import machines
    from lab.paths import Paths

    return machines.power(Paths.from_env(), name)


def vagrant_power(name: str, directory: str) -> str:
    """The state of the Vagrant machine NAME (`python3 -m vagrantbox machine status`)."""
    proc = subprocess.run(["python3", "-m", "vagrantbox", "machine", "status", name, "--dir", directory],
                          capture_output=True, text=True, check=False, timeout=PROBE_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"`vagrantbox machine status {name}` failed: {proc.stderr.strip()}")
    return str(json.loads(proc.stdout)["state"])


def power_state(props: Mapping[str, Any]) -> str:
    if props["kind"] == "vagrant":
        return vagrant_power(str(props["name"]), str(props["dir"]))
    return lab_power(str(props["name"]))


POWER_INPUTS = ("kind", "name", "dir", "boot")
BOOT_TIMEOUT = 600  # seconds for the machine provider to boot a machine


def boot(props: Mapping[str, Any]) -> None:
    """Boot a stopped machine with its own `up` command (it waits until the machine answers)."""
    proc = subprocess.run(str(props["boot"]), shell=True, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False, timeout=BOOT_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{props['name']}: `{props['boot']}` failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")


class MachinePowerProvider(dynamic.ResourceProvider):
    """Whether a machine runs; a stopped one is booted by the next update. A changed boot
    command (the machine's settings) is run on a running machine too: the lab records the
    settings, and a machine that must reboot to get them says so (/run/reboot-required)."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(str(props["name"]), {**props, "state": RUNNING})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(id_, {**props, "state": power_state(props)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        down = olds.get("state", RUNNING) != RUNNING
        return dynamic.DiffResult(changes=down or any(olds.get(k) != news.get(k) for k in POWER_INPUTS))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        state = olds.get("state", RUNNING)
        if state == GONE:
            raise RuntimeError(
                f"{news['name']} is gone: its disk and SSH host key went with it, and the program does "
                "not make a machine anew behind the stack's back. Fix: `pulumi destroy` and `pulumi up` "
                "(`./run down`, `./run up`) build the cluster again")
        if state == STOPPED or olds.get("boot") != news.get("boot"):
            boot(news)
        return dynamic.UpdateResult({**news, "state": RUNNING})


class MachinePower(dynamic.Resource, module="drift", name="MachinePower"):
    """Whether the machine runs, as the last refresh found it."""

    state: pulumi.Output[str]

    def __init__(self, name: str, kind: str, machine: str, boot: str, directory: str = "",
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MachinePowerProvider(), name,
                         {"kind": kind, "name": machine, "dir": directory, "boot": boot, "state": None}, opts)


# ---------------------------------------------------------------------------------------------
# The agents: units, files and binaries


def ssh_probe(connection: Mapping[str, Any], products: Sequence[str]) -> machine_drift.Drift:
    """Run observe.py on the machine (as root) and compare; a machine that does not answer is
    drift too."""
    host = str(connection["host"])
    request = shlex.quote(json.dumps(machine_drift.probe_request(products, MANIFESTS)))
    command = sshcmd.as_root(str(connection["user"]), "python3 -I -S - " + request)
    with tempfile.TemporaryDirectory(prefix="hashicluster-probe-") as tmp:
        try:
            proc = subprocess.run(sshcmd.ssh_argv(connection, Path(tmp), command), input=OBSERVE.read_text(),
                                  capture_output=True, text=True, check=False, timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return machine_drift.unreachable(f"no answer within {PROBE_TIMEOUT} s")
    if proc.returncode == 255:  # ssh's own failure: not connected, refused, host key
        lines = proc.stderr.strip().splitlines()
        return machine_drift.unreachable(lines[-1] if lines else "ssh failed")
    if proc.returncode != 0:
        raise RuntimeError(f"the drift probe failed on {host} (exit {proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return machine_drift.drift(products, json.loads(proc.stdout))


STATE_INPUTS = ("connection", "products")


class AgentStateProvider(dynamic.ResourceProvider):
    """What drifted on a machine; a change (and generations up) when something did."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        gens = {machine_drift.generation_key(p): 0 for p in machine_drift.PRODUCTS}
        return dynamic.CreateResult(str(props["name"]), {**props, "drift": {}, **gens})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(id_, {**props, "drift": ssh_probe(props["connection"], props["products"])})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        found: machine_drift.Drift = olds.get("drift") or {}
        moved = any(olds.get(key) != news.get(key) for key in STATE_INPUTS)
        if machine_drift.MACHINE in found:
            stables: list[str] = []  # which products drifted is known only once it answers
        else:
            stables = [machine_drift.generation_key(p) for p in machine_drift.PRODUCTS if p not in found]
        return dynamic.DiffResult(changes=bool(found) or moved, stables=stables)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        found: machine_drift.Drift = olds.get("drift") or {}
        if found:  # look again: a machine found down has just been booted by its own update
            found = ssh_probe(news["connection"], news["products"])
            if machine_drift.MACHINE in found:
                raise RuntimeError(f"{news['name']}: {machine_drift.summary(found)}. Fix: check the machine "
                                   "(`./run status`), then `pulumi up --refresh` again")
        gens = machine_drift.repaired(machine_drift.generations(olds), found)
        return dynamic.UpdateResult({**news, "drift": {},
                                     **{machine_drift.generation_key(p): g for p, g in gens.items()}})


class AgentState(dynamic.Resource, module="drift", name="AgentState"):
    """A machine's agents as the install steps left them; per product, a repair generation."""

    drift: pulumi.Output[dict[str, list[str]]]

    def __init__(self, name: str, connection: pulumi.Input[Mapping[str, Any]], products: Sequence[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        gens = {machine_drift.generation_key(p): None for p in machine_drift.PRODUCTS}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"]))
        props = {"name": name, "connection": connection, "products": list(products), "drift": None, **gens}
        super().__init__(AgentStateProvider(), name, props, opts)

    def generation(self, product: str) -> pulumi.Output[int]:
        """PRODUCT's repair generation (the output gen_PRODUCT): for its install step's triggers."""
        output: pulumi.Output[int] = getattr(self, machine_drift.generation_key(product))
        return output
