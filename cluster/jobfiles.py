"""What the stack's job files ask of the clients, read from their HCL (pure; no cluster).

    task_drivers(Path("jobs/fib.nomad.hcl").read_text())  -> frozenset({"docker"})

The clients enable a task driver that runs without isolation (raw_exec) only when a job in the
stack's list uses it; the isolated ones (docker, exec) are always on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hcl2
from lark.exceptions import LarkError

_OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)


class JobFileError(ValueError):
    """A job file that is not HCL, or names no job."""


def _blocks(body: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The labelled blocks KIND in BODY (`kind "label" { ... }`), as (label, body)."""
    for block in body.get(kind, []):
        yield from block.items()


def task_drivers(hcl: str) -> frozenset[str]:
    """The drivers of every task of every group of the job in HCL."""
    try:
        parsed = hcl2.loads(hcl, serialization_options=_OPTIONS)
    except LarkError as e:
        raise JobFileError(f"not a Nomad job file: {str(e).splitlines()[0]}") from e
    jobs = list(_blocks(parsed, "job"))
    if len(jobs) != 1:
        raise JobFileError(f"expected one job block, found {len(jobs)}")
    _, job = jobs[0]
    return frozenset(str(task.get("driver", ""))
                     for _, group in _blocks(job, "group") for _, task in _blocks(group, "task"))

