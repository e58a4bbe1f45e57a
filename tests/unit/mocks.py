"""Pulumi mocks for unit tests (no engine, no machines): a monitor that records the graph.

MockResourceArgs carries neither the parent nor the dependencies of a resource, so the
RecordingMonitor keeps them from the RegisterResource requests themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from cluster.secrets import CLUSTER_OUTPUTS, NODE_OUTPUTS

PROJECT = "hashicluster"


@dataclass
class Registration:
    type: str
    name: str
    parent_urn: str
    dependencies: list[str]
    urn: str
    additional_secret_outputs: list[str] = field(default_factory=list)
    deleted_with: str = ""  # the URN of what it is deleted with (Pulumi's deletedWith), if any


class LabMocks(pulumi.runtime.Mocks):
    """Answers like the real providers would: `lab up` and `vagrantbox machine up` print JSON."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command" and "lab up" in str(args.inputs.get("create", "")):
            words = str(args.inputs["create"]).split()
            outputs["stdout"] = json.dumps({
                "name": words[4], "address": words[words.index("--address") + 1], "user": "root",
                "private_key_path": str(self.key_file), "ssh_port": 22,
                "host_key_public": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockHostKey mock",
            })
        create = str(args.inputs.get("create", ""))
        if args.typ == "command:local:Command" and "vagrantbox machine up" in create:
            name = create.split()[4]
            outputs["stdout"] = json.dumps({
                "name": name, "dir": f"/project/.hashicluster/vagrant/unit/{name}", "host": "192.168.121.7",
                "port": 22, "user": "root", "private_key_path": str(self.key_file),
                "host_key_public": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockHostKey",
            })
        if args.typ == "pulumi-python:dynamic:Resource" and args.name == "cluster-secrets":
            # ClusterSecrets and NodeCredentials: stand-ins a test can look for.
            outputs.update({k: f"MOCK-SECRET-{k}" for k in CLUSTER_OUTPUTS})
        if args.typ == "command:remote:Command" and args.name == "nomad-acl":
            # What the step prints: Nomad's tokens (made by Nomad) for the machines and the jobs.
            outputs["stdout"] = ("machine 11111111-2222-4333-8444-555555555555\n"
                                 "jobs 66666666-7777-4888-8999-aaaaaaaaaaaa\n"
                                 "status 77777777-8888-4999-8aaa-bbbbbbbbbbbb\n")
        if args.typ == "pulumi-python:dynamic/secrets:TokenSecret":  # consul-status-token, consul-dns-token
            outputs["secret"] = f"MOCK-SECRET-{args.name.replace('-', '_')}"
        if args.typ == "pulumi-python:dynamic:Resource" and args.name.endswith("-credentials"):
            outputs.update({k: f"MOCK-SECRET-{k}-of-{args.name}" for k in NODE_OUTPUTS})
        self.inputs[args.name] = dict(args.inputs)
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: LabMocks) -> None:
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        reg = Registration(request.type, request.name, request.parent, list(request.dependencies),
                           response.urn, list(request.additionalSecretOutputs), request.deletedWith)
        self.registrations[request.name] = reg
        return response


@dataclass
class Graph:
    """The recorded resource graph of one mocked program run."""

    monitor: RecordingMonitor
    mocks: LabMocks
    result: Any = None
    by_urn: dict[str, Registration] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.monitor.registrations.values()}

    def get(self, name: str) -> Registration:
        return self.monitor.registrations[name]

    def names(self) -> set[str]:
        return set(self.monitor.registrations)

    def parent_name(self, name: str) -> str | None:
        parent = self.by_urn.get(self.get(name).parent_urn)
        return parent.name if parent else None

    def depends_on(self, name: str, other: str) -> bool:
        return self.get(other).urn in self.get(name).dependencies

    def waits_for(self, name: str, other: str) -> bool:
        """NAME depends on OTHER directly or through other resources (the engine's order)."""
        target, seen, todo = self.get(other).urn, set(), list(self.get(name).dependencies)
        while todo:
            urn = todo.pop()
            if urn == target:
                return True
            if urn not in seen and urn in self.by_urn:
                seen.add(urn)
                todo += self.by_urn[urn].dependencies
        return False

    def inputs(self, name: str) -> dict[str, Any]:
        return self.mocks.inputs[name]

    def changed(self, other: Graph) -> set[str]:
        """Resources whose inputs differ in `other` (a run of the program with other config)."""
        return {name for name in self.names() | other.names()
                if name not in self.mocks.inputs or name not in other.mocks.inputs
                or _comparable(self.inputs(name)) != _comparable(other.inputs(name))}


def _comparable(value: Any) -> Any:
    """Inputs with assets replaced by their paths (assets compare by identity)."""
    if isinstance(value, pulumi.FileAsset):
        return ("FileAsset", value.path)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def run_program(build: Callable[[], Any], key_file: Path, stack: str = "unit",
                config: Mapping[str, str] | None = None) -> Graph:
    """Run `build` under mocks, wait for every resource to register, return the graph."""
    mocks = LabMocks(key_file)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in (config or {}).items()})
    holder: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _run() -> pulumi.Output[Any]:
        result = holder["result"] = build()
        return pulumi.Output.all(*[step.id for step in result.steps])

    _run()
    return Graph(monitor, mocks, holder["result"])
