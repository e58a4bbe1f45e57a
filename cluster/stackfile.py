"""What `./run` needs to know of a stack before Pulumi runs, read from its stack file.

    python3 -m cluster.stackfile provider Pulumi.lab.yaml     # prints nspawn, vagrant, ...
    python3 -m cluster.stackfile same-config stacks/lab.yaml Pulumi.lab.yaml   # exit 0 or 1

The machine provider decides where Pulumi runs (inside the lab network or on the host) and
whether root is needed (the lab) or not (Vagrant VMs). The program itself validates the
whole config (cluster/config.py); a stack file without the key is left to it to refuse.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

PROVIDER_KEY = "hashicluster:machines"


def machine_provider(stack: dict[str, Any] | None) -> str:
    """The stack's `hashicluster:machines.provider`, or "nspawn" (the lab) when it is not set."""
    machines = ((stack or {}).get("config") or {}).get(PROVIDER_KEY) or {}
    provider = machines.get("provider") if isinstance(machines, dict) else None
    return str(provider) if provider else "nspawn"


def stack_config(stack: dict[str, Any] | None) -> dict[str, Any]:
    """The stack's `config` (what Pulumi keeps beside it, such as the salt, left out)."""
    return dict((stack or {}).get("config") or {})


class StackFileError(Exception):
    pass


def load(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise StackFileError(f"cannot read the stack file {path}: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise StackFileError(f"the stack file {path} is not a YAML mapping")
    return data


USAGE = ("usage: python3 -m cluster.stackfile provider STACK_FILE\n"
         "       python3 -m cluster.stackfile same-config STACK_FILE OTHER_STACK_FILE")


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "provider":
            print(machine_provider(load(Path(argv[1]))))
            return 0
        if len(argv) == 3 and argv[0] == "same-config":
            same = stack_config(load(Path(argv[1]))) == stack_config(load(Path(argv[2])))
            return 0 if same else 1
    except StackFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
