"""What a machine has of what the program put there: run on the machine by the drift probe
(cluster/services/drift.py) as `python3 - WANT < observe.py`.

Each install step leaves a manifest, MANIFESTS/PRODUCT.sha256: the sha256 of every file and
binary it put in place, as `sha256sum` prints them (`HASH  PATH` per line).

Reads: WANT, a JSON object {"products": [PRODUCT, ...], "manifests": MANIFESTS}.
Prints: one JSON object {PRODUCT: {"active": its unit's ActiveState, "enabled": its
UnitFileState, "manifest": false when there is none, "files": {PATH: "ok", "changed" or
"missing"}}}.
Changes nothing on the machine: it only reads, so running it again gives the same answer.
"""

import hashlib
import json
import os
import subprocess
import sys

PROPERTIES = ("ActiveState", "UnitFileState")


def unit_state(unit: str) -> dict[str, str]:
    """The unit's ActiveState and UnitFileState, from `systemctl show`'s KEY=VALUE lines."""
    proc = subprocess.run(["systemctl", "show", unit, "--property=" + ",".join(PROPERTIES)],
                          capture_output=True, text=True, check=False)
    shown = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return {"active": shown.get("ActiveState") or "unknown",
            "enabled": shown.get("UnitFileState") or "not-found"}


def file_state(path: str, digest: str) -> str:
    try:
        with open(path, "rb") as f:
            return "ok" if hashlib.sha256(f.read()).hexdigest() == digest else "changed"
    except FileNotFoundError:
        return "missing"


def product_state(product: str, manifests: str) -> dict[str, object]:
    state: dict[str, object] = {**unit_state(product), "manifest": False, "files": {}}
    path = os.path.join(manifests, f"{product}.sha256")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return state
    entries = [line.split(None, 1) for line in lines if line.strip()]
    state["manifest"] = True
    state["files"] = {name: file_state(name, digest) for digest, name in entries}
    return state


def main() -> None:
    want = json.loads(sys.argv[1])
    print(json.dumps({p: product_state(p, want["manifests"]) for p in want["products"]}))


main()
