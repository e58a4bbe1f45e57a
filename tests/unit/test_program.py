"""The resource graph under Pulumi mocks: names, parents, dependencies, config errors."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from cluster import program
from cluster.machines import nspawn

from .conftest import LAB_STACK
from .mocks import run_program

NODES = ["root-server", "frontend-lb", "client1", "client2", "client3"]


def test_lab_stack_graph(key_file: Path) -> None:
    graph = run_program(lambda: program.build(LAB_STACK, "unit", check_network=False), key_file)
    for node in NODES:
        machine = graph.get(node)
        assert machine.type == "hashicluster:machines:NspawnMachine"
        assert graph.parent_name(f"{node}-lab") == node
        assert graph.get(f"{node}-lab").type == "command:local:Command"
        step = graph.get(f"{node}-identity")
        assert step.type == "command:remote:Command"
        assert graph.parent_name(f"{node}-identity") == node
        # The step runs over the connection that the machine's `lab up` produced.
        assert graph.depends_on(f"{node}-identity", f"{node}-lab")
    # ... and on no other machine's.
    assert not graph.depends_on("client1-identity", "client2-lab")
    expected = set(NODES) | {f"{n}-lab" for n in NODES} | {f"{n}-identity" for n in NODES}
    assert graph.names() == expected


def test_lab_commands_name_stack_machine_and_address(key_file: Path) -> None:
    graph = run_program(lambda: program.build(LAB_STACK, "unit", check_network=False), key_file)
    lab = graph.inputs("client2-lab")
    assert lab["create"] == "python3 -m lab up unit-client2 --address 10.210.1.32"
    assert lab["delete"] == "python3 -m lab down unit-client2"
    script = graph.inputs("client2-identity")["create"]
    assert "want=client2.demo" in script
    for line in ["10.210.1.10 root.server.demo root", "10.210.1.20 frontend.lb.demo frontend",
                 "10.210.1.31 client1.demo client1", "10.210.1.33 client3.demo client3"]:
        assert line in script


def test_outputs_list_every_machine(key_file: Path) -> None:
    graph = run_program(lambda: program.build(LAB_STACK, "unit", check_network=False), key_file)
    outputs = graph.result.outputs()
    assert outputs["machines"]["frontend-lb"] == {
        "hostname": "frontend.lb.demo", "address": "10.210.1.20", "role": "lb"}
    assert outputs["hostsLines"][0] == "10.210.1.10 root.server.demo"
    assert len(outputs["hostsLines"]) == 5


def test_more_clients_more_machines(key_file: Path) -> None:
    raw = dict(LAB_STACK, clients="5", servers="3")
    graph = run_program(lambda: program.build(raw, "unit", check_network=False), key_file)
    assert {"server2", "server3", "client5"} <= graph.names()
    assert graph.inputs("server3-lab")["create"].endswith("--address 10.210.1.12")


def test_bad_config_fails_before_any_resource(key_file: Path) -> None:
    raw = dict(LAB_STACK, clients="lots")
    with pytest.raises(pulumi.RunError, match=r"hashicluster:clients: expected a whole number"):
        run_program(lambda: program.build(raw, "unit", check_network=False), key_file)


def test_stack_config_reads_this_projects_keys_only(key_file: Path) -> None:
    pulumi.runtime.set_all_config({"hashicluster:clients": "4", "other:thing": "x"})
    assert program.stack_config() == {"clients": "4"}


def test_nspawn_refuses_outside_the_lab_network() -> None:
    # This test process is not inside the lab's network namespace unless run via `lab exec`.
    try:
        nspawn.require_lab_network()
    except nspawn.NotInLabNetworkError as err:
        assert "lab exec" in str(err)
    else:
        inode = Path("/proc/self/ns/net").stat().st_ino
        assert inode == Path("/run/netns/hcl-lab").stat().st_ino
