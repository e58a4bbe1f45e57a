"""What a machine has of what the program put there: run on the machine by the drift probe
(cluster/services/drift.py) as `python3 - WANT < observe.py`.

Reads: WANT, a JSON object {"units": [UNIT, ...], "files": [PATH, ...], "read": [PATH, ...]}.
Prints: one JSON object {"units": {UNIT: {"active": ActiveState, "enabled": UnitFileState}},
"files": {PATH: sha256 hex, or null when there is no such file}, "read": {PATH: its text
without surrounding blanks, or null}} (`read`: the small records the install steps keep).
Changes nothing on the machine: it only reads, so running it again gives the same answer.
"""

import hashlib
import json
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


def file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def file_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def main() -> None:
    want = json.loads(sys.argv[1])
    print(json.dumps({"units": {unit: unit_state(unit) for unit in want["units"]},
                      "files": {path: file_digest(path) for path in want["files"]},
                      "read": {path: file_text(path) for path in want.get("read", [])}}))


main()
