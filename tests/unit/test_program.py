"""The resource graph under Pulumi mocks: names, parents, dependencies, config errors."""

from __future__ import annotations

import base64
import io
import itertools
import shutil
import tarfile
from pathlib import Path

import pulumi
import pytest

from cluster import config as cfg
from cluster import images, program
from cluster.machines import nspawn

from .conftest import LAB_STACK, fake_binaries, fake_pins
from .mocks import Graph, run_program

NODES = ["root-server", "frontend-lb", "client1", "client2", "client3"]


def lab(key_file: Path, raw: dict[str, str] | None = None) -> Graph:
    """The program under mocks, with the toolchain's pins and binaries faked."""
    config = raw if raw is not None else LAB_STACK
    return run_program(lambda: program.build(config, "unit", check_network=False, pins=fake_pins,
                                             local_binaries=fake_binaries), key_file)


def test_lab_stack_graph(key_file: Path) -> None:
    graph = lab(key_file)
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
    agents = {f"{n}-consul" for n in NODES} | {f"{n}-consul-upload" for n in NODES}
    agents |= {f"{n}-nomad" for n in NODES if n != "frontend-lb"}
    agents |= {f"{n}-nomad-upload" for n in NODES if n != "frontend-lb"}
    agents |= {f"client{i}-cadvisor" for i in (1, 2, 3)} | {f"client{i}-cadvisor-upload" for i in (1, 2, 3)}
    agents |= {f"client{i}-docker" for i in (1, 2, 3)}  # from the machines' packages: no upload
    agents |= {"frontend-lb-nginx", "frontend-lb-consul-template", "frontend-lb-consul-template-upload"}
    agents |= {"frontend-lb-docker-registry"}  # the cluster's image registry
    agents |= {"fib-image", "fib-image-pushed"}  # fib's image, built from jobs/fib/ on client1
    agents |= {f"{n}-dnsmasq" for n in NODES}  # the DNS forwarder: *.consul for machines and containers
    gates = {"consul-servers-ready", "nomad-servers-ready", "cluster-ready", "consul-acl", "nomad-acl"}
    rolls = {f"{n}-roll" for n in NODES}  # one server: no leader pass
    rolls |= {f"client{i}-rejoin" for i in (1, 2, 3)}  # a client back after a reboot in its turn
    secrets = {"cluster-secrets", "consul-status-token", "consul-dns-token"}
    secrets |= {f"{n}-credentials" for n in NODES}
    drift = {f"{n}-power" for n in NODES} | {f"{n}-state" for n in NODES}
    assert graph.names() == expected | agents | gates | rolls | secrets | drift | {"job-fib", "unit"}
    # A machine's key and certificate belong to it (the review summary lists them there).
    assert graph.parent_name("client1-credentials") == "client1"
    # Jobs come after every step, the load balancer's included.
    assert graph.depends_on("job-fib", "frontend-lb-consul-template")
    assert graph.depends_on("job-fib", "cluster-ready")



def test_a_destroy_skips_the_removals_on_the_lab_machines_it_deletes(key_file: Path) -> None:
    graph = lab(key_file)
    teardown = graph.get("unit")  # the stack's Teardown, named after the stack
    assert teardown.type == "hashicluster:index:Teardown"
    # Every step that removes something from a lab machine, and the job, go with it: a
    # destroy deletes the machines themselves ...
    removing = {name for name in graph.names() if graph.inputs(name).get("delete")
                and graph.get(name).type == "command:remote:Command"}
    assert {"client1-identity", "client1-consul", "client1-nomad", "frontend-lb-docker-registry"} <= removing
    for name in [*removing, "job-fib"]:
        assert graph.get(name).deleted_with == teardown.urn, name
    # ... whose own deletions (`lab down`) run, as do the controller's own records.
    for name in ["client1-lab", "client1-power", "client1-credentials", "cluster-secrets"]:
        assert graph.get(name).deleted_with == "", name
    # Nothing depends on it: a client taken away by a change (the Teardown stays) still
    # leaves gracefully.
    assert not any(teardown.urn in r.dependencies for r in graph.monitor.registrations.values())

def test_drift_is_wired_from_power_to_machine_and_from_state_to_the_steps(key_file: Path) -> None:
    graph = lab(key_file)
    for node in NODES:
        assert graph.parent_name(f"{node}-power") == node and graph.parent_name(f"{node}-state") == node
        # A machine found stopped is booted with its own `lab up`, before the probe looks again.
        assert graph.inputs(f"{node}-power")["boot"] == graph.inputs(f"{node}-lab")["create"]
        assert graph.depends_on(f"{node}-state", f"{node}-power")
        # The probe runs over the machine's connection; each install step takes its generation.
        assert graph.depends_on(f"{node}-state", f"{node}-lab")
        assert graph.depends_on(f"{node}-consul", f"{node}-state")
    assert graph.depends_on("client2-cadvisor-upload", "client2-state")
    assert not graph.depends_on("client1-consul", "client2-state")
    assert graph.inputs("client1-state")["products"] == ["consul", "dnsmasq", "nomad", "docker", "cadvisor"]
    assert graph.inputs("frontend-lb-state")["products"] == ["consul", "dnsmasq", "docker-registry", "nginx",
                                                            "consul-template"]
    # The install step leaves the manifest the probe checks: its binary and files by sha256.
    script = graph.inputs("client1-nomad")["create"]
    assert "/var/lib/hashicluster/manifest/nomad.sha256" in script
    assert "  /usr/local/bin/nomad \\\n" in script and "  /etc/nomad.d/client.hcl \\\n" in script


def test_lab_commands_name_stack_machine_and_address(key_file: Path) -> None:
    graph = lab(key_file)
    machine = graph.inputs("client2-lab")
    assert machine["create"] == "python3 -m lab up unit-client2 --address 10.210.1.32 --containers"
    assert machine["delete"] == "python3 -m lab down unit-client2"
    script = graph.inputs("client2-identity")["create"]
    assert "want=client2.demo" in script
    for line in ["10.210.1.10 root.server.demo root", "10.210.1.20 frontend.lb.demo frontend",
                 "10.210.1.31 client1.demo client1", "10.210.1.33 client3.demo client3"]:
        assert line in script


def test_outputs_list_every_machine(key_file: Path) -> None:
    graph = lab(key_file)
    outputs = graph.result.outputs()
    assert outputs["machines"]["frontend-lb"] == {
        "hostname": "frontend.lb.demo", "address": "10.210.1.20", "role": "lb",
        "ssh": "python3 -m lab ssh unit-frontend-lb"}
    assert outputs["consulUi"] == "https://10.210.1.10:8501/ui/"
    assert outputs["nomadUi"] == "https://10.210.1.10:4646/ui/"
    assert "caCertificate" in outputs
    # The read-only tokens of `./run status`, beside the management tokens.
    assert {"statusConsulToken", "statusNomadToken", "consulManagementToken"} <= set(outputs)
    assert outputs["hostsLines"][0] == "10.210.1.10 root.server.demo"
    assert len(outputs["hostsLines"]) == 5


def test_more_clients_more_machines(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, clients="5", servers="3"))
    assert {"server2", "server3", "client5"} <= graph.names()
    assert graph.inputs("server3-lab")["create"].endswith("--address 10.210.1.12")


def test_bad_config_fails_before_any_resource(key_file: Path) -> None:
    with pytest.raises(pulumi.RunError, match=r"hashicluster:clients: expected a whole number"):
        lab(key_file, dict(LAB_STACK, clients="lots"))


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


def test_install_order_servers_then_gates_then_clients(key_file: Path) -> None:
    graph = lab(key_file)
    assert graph.depends_on("root-server-consul", "root-server-identity")
    assert graph.depends_on("root-server-consul", "root-server-consul-upload")
    assert graph.depends_on("consul-servers-ready", "root-server-consul")
    assert graph.depends_on("consul-acl", "consul-servers-ready")
    assert graph.depends_on("root-server-nomad", "consul-acl")
    assert graph.depends_on("nomad-acl", "nomad-servers-ready")
    assert graph.depends_on("nomad-servers-ready", "root-server-nomad")
    for client in ("client1", "client2", "client3", "frontend-lb"):
        # No client step before the servers' gate and Consul's ACLs.
        assert graph.depends_on(f"{client}-consul", "consul-acl")
        assert not graph.depends_on(f"{client}-consul", "nomad-servers-ready")
    for client in ("client1", "client2", "client3"):
        assert graph.depends_on(f"{client}-nomad", "nomad-acl")
        # Docker and cAdvisor need no server: they install while the servers do.
        for product in ("docker", "cadvisor"):
            assert graph.waits_for(f"{client}-{product}", f"{client}-identity")
            assert not graph.waits_for(f"{client}-{product}", "root-server-consul")
        assert graph.depends_on(f"{client}-nomad", f"{client}-consul")
        assert graph.depends_on("cluster-ready", f"{client}-nomad")
    assert graph.parent_name("cluster-ready") == "root-server"
    # The load balancer comes after the whole cluster works; consul-template after nginx.
    assert graph.depends_on("frontend-lb-nginx", "cluster-ready")
    assert graph.depends_on("frontend-lb-consul-template", "frontend-lb-nginx")
    assert graph.depends_on("frontend-lb-consul-template", "frontend-lb-consul-template-upload")
    assert graph.parent_name("client2-nomad") == "client2"


def test_steps_carry_the_hash_of_what_they_install(key_file: Path) -> None:
    graph = lab(key_file)
    step = graph.inputs("client1-nomad")
    assert "# nomad 1.6.3 sha256 " + "d" * 64 in step["create"]
    assert "client {" in step["create"] and "bootstrap_expect" not in step["create"]
    server = graph.inputs("root-server-consul")["create"]
    assert "bootstrap_expect = 1" in server and 'retry_join     = ["10.210.1.10"]' in server
    assert graph.inputs("root-server-consul-upload")["remotePath"] == \
        "/var/lib/hashicluster/uploads/consul-1.14.11.gz"
    # The hash of what it installs, and the hash of its secret files (TLS key and certificates).
    # Between them, the machine's repair generation for nomad (an output of client1-state).
    digest, _generation, secrets = step["triggers"]
    assert len(digest) == 64 and len(secrets) == 64


def test_one_client_setting_changes_only_that_clients_steps(key_file: Path) -> None:
    before = lab(key_file)
    changed = dict(LAB_STACK, clientSettings='{"client2": {"meta": {"rack": "r2"}}}')
    after = lab(key_file, changed)
    assert before.changed(after) == {"client2-nomad", "client2-roll", "client2-rejoin"}
    assert 'rack = "r2"' in after.inputs("client2-nomad")["create"]
    assert before.inputs("client2-nomad")["triggers"] != after.inputs("client2-nomad")["triggers"]


def test_a_new_version_changes_every_step_of_that_product_only(key_file: Path) -> None:
    before = lab(key_file)
    after = lab(key_file, dict(LAB_STACK, nomad='{"version": "1.6.4", "sha256": "' + "e" * 64 + '"}'))
    differ = before.changed(after)
    nomad_nodes = ["root-server", "client1", "client2", "client3"]
    assert differ == ({f"{n}-nomad" for n in nomad_nodes} | {f"{n}-nomad-upload" for n in nomad_nodes}
                      | {f"{n}-roll" for n in nomad_nodes} | {"nomad-servers-ready"}
                      | {f"{n}-rejoin" for n in nomad_nodes if n != "root-server"})


def test_consul_and_nomad_changes_are_staged_for_the_roll(key_file: Path) -> None:
    graph = lab(key_file)
    for node, product in [("root-server", "consul"), ("root-server", "nomad"), ("client1", "consul"),
                          ("client1", "nomad"), ("frontend-lb", "consul")]:
        step = graph.inputs(f"{node}-{product}")
        # A new machine starts its agent at once; a change on a running one waits for its turn.
        assert f"systemctl restart {product}" in step["create"]
        assert f"systemctl restart {product}" not in step["update"]
        assert f"touch /var/lib/hashicluster/restart/{product}" in step["update"]
    # The others restart in place: no cluster state hangs on them.
    step = graph.inputs("client1-cadvisor")
    assert step["create"] == step["update"] and "systemctl restart cadvisor" in step["update"]


def test_rolling_restarts_go_one_machine_at_a_time_servers_first(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, servers="3", clients="2"))
    servers = ["root-server", "server2", "server3"]
    chain = ([f"{s}-roll" for s in servers] + [f"{s}-roll-leader" for s in servers]
             + ["frontend-lb-roll", "client1-roll", "client1-rejoin", "client2-roll", "client2-rejoin"])
    for earlier, later in itertools.pairwise(chain):
        assert graph.depends_on(later, earlier), (later, earlier)
    for roll in [turn for turn in chain if not turn.endswith("-rejoin")]:
        node = roll.removesuffix("-leader").removesuffix("-roll")
        assert graph.parent_name(roll) == node
        assert graph.depends_on(roll, f"{node}-consul")
        script = graph.inputs(roll)["update"]
        assert "systemctl restart consul" in script
        assert ("systemctl restart nomad" in script) is (node != "frontend-lb")
    # The first pass leaves the leader for the second; the leader's pass restarts it.
    first, leader = graph.inputs("server2-roll")["update"], graph.inputs("server2-roll-leader")["update"]
    assert "'\"10.210.1.11:8300\"' ]; then" in first and "restarted in the leader pass" in first
    assert "restarted in the leader pass" not in leader
    # A roll runs again when an install step of its machine changes: its triggers are theirs.
    staged = [graph.inputs(f"client1-{p}")["triggers"] for p in ("consul", "docker", "nomad")]
    assert graph.inputs("client1-roll")["triggers"] == staged
    # A client that asks for a reboot gets it in its turn, drained first; its rejoin step waits
    # until it is back, then makes it eligible again.
    turn, rejoin = graph.inputs("client1-roll")["update"], graph.inputs("client1-rejoin")["update"]
    assert turn.index("nomad node drain -self -enable") < turn.index("systemctl reboot")
    assert "/run/reboot-required" not in graph.inputs("frontend-lb-roll")["update"]
    assert graph.inputs("client1-rejoin")["triggers"] == staged
    assert "nomad node drain -self -disable" in rejoin
    # Clients install while the servers roll; the cluster is ready after the last turn.
    assert not graph.depends_on("client1-consul", "server3-roll-leader")
    assert graph.depends_on("cluster-ready", "client2-rejoin")


def test_many_clients_take_their_roll_turns_a_fifth_at_a_time(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, clients="10"))
    groups = [["client1", "client2"], ["client3", "client4"], ["client5", "client6"],
              ["client7", "client8"], ["client9", "client10"]]
    for client in groups[0]:
        assert graph.depends_on(f"{client}-roll", "frontend-lb-roll")
    for earlier, later in itertools.pairwise(groups):
        for client in later:
            # After every client of the group before (back from its turn), none of its own group.
            assert {c for c in earlier if graph.depends_on(f"{client}-roll", f"{c}-rejoin")} == set(earlier)
            assert not any(graph.waits_for(f"{client}-roll", f"{c}-roll") for c in later if c != client)
    assert all(graph.waits_for("cluster-ready", f"client{n}-rejoin") for n in range(1, 11))


def test_removing_a_machine_takes_it_out_of_the_cluster_first(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, servers="3"))
    nomad = graph.inputs("client1-nomad")["delete"]
    drain = nomad.index("nomad node drain -self -enable -yes -deadline 2m")
    assert drain < nomad.index("systemctl stop nomad") < nomad.index("/v1/node/$id/purge")
    assert nomad.index("/v1/node/$id/purge") < nomad.index("systemctl disable --now")
    consul = graph.inputs("client1-consul")["delete"]
    assert consul.index("consul leave") < consul.index("systemctl disable --now")
    server = graph.inputs("server2-consul")["delete"]
    assert "consul leave" in server and "no client left" in server
    assert "drain" not in graph.inputs("server2-nomad")["delete"]


def test_gossip_keys_reach_the_agents_on_stdin_only(key_file: Path) -> None:
    graph = lab(key_file)
    server = graph.inputs("root-server-consul")
    bundle = dict(line.split(" ", 1) for line in server["stdin"].splitlines())
    assert set(bundle) == {"/etc/consul.d/gossip.hcl", "/etc/consul.d/tls/ca.pem",
                           "/etc/consul.d/tls/agent.pem", "/etc/consul.d/tls/agent-key.pem",
                           "/etc/consul.d/acl.hcl", "/etc/consul.d/api.token", "/etc/consul.d/api.header"}
    assert bundle["/etc/consul.d/tls/agent-key.pem"].split()[:2] == ["0600", "consul"]
    key = base64.b64decode(bundle["/etc/consul.d/tls/agent-key.pem"].split()[2]).decode()
    assert key == "MOCK-SECRET-key_pem-of-root-server-credentials"
    mode, owner, data = bundle["/etc/consul.d/gossip.hcl"].split()
    assert (mode, owner) == ("0640", "consul")
    assert 'encrypt                 = "MOCK-SECRET-consul_gossip_key"' in base64.b64decode(data).decode()
    for step in ("create", "update", "delete"):
        assert "MOCK-SECRET" not in server[step]
    assert "/etc/consul.d/gossip.hcl did not arrive on stdin" in server["create"]
    # The secret's hash joins the triggers: a new key re-runs the step.
    assert len(server["triggers"]) == 3 and "MOCK-SECRET" not in str(server["triggers"])
    nomad_server = graph.inputs("root-server-nomad")
    assert "/etc/nomad.d/gossip.hcl " in nomad_server["stdin"]
    # Nomad clients do not gossip: their own TLS files only.
    client = graph.inputs("client1-nomad")["stdin"]
    assert "/etc/nomad.d/gossip.hcl" not in client and "/etc/nomad.d/tls/agent-key.pem 0600 root " in client
    assert "MOCK-SECRET" not in str(graph.result.outputs())


def test_security_off_makes_no_secret_and_removes_the_old_files(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, security='{"gossip": false, "tls": false, "acl": false}'))
    assert "cluster-secrets" not in graph.names()
    server = graph.inputs("root-server-consul")
    assert not server.get("stdin")
    assert "if [ -e /etc/consul.d/gossip.hcl ]; then rm -f /etc/consul.d/gossip.hcl; changed=1; fi" \
        in server["update"]
    assert "if [ -e /etc/consul.d/tls/agent-key.pem ]; then rm -f" in server["update"]
    outputs = graph.result.outputs()
    assert outputs["consulUi"] == "http://10.210.1.10:8500/ui/" and "caCertificate" not in outputs
    assert "statusConsulToken" not in outputs and "statusNomadToken" not in outputs
    assert "consul-status-token" not in graph.names()


VAGRANT_STACK = {"machines": '{"provider": "vagrant", "driver": "qemu", "box": "hashicluster/bookworm"}',
                 "clients": "2", "install": '{"source": "upload"}'}


def test_vagrant_stack_graph(key_file: Path) -> None:
    graph = lab(key_file, VAGRANT_STACK)
    nodes = ["root-server", "frontend-lb", "client1", "client2"]
    for node in nodes:
        assert graph.get(node).type == "hashicluster:machines:VagrantMachine"
        vm = graph.inputs(f"{node}-vagrant")
        assert graph.parent_name(f"{node}-vagrant") == node
        where = f"{node} --dir .hashicluster/vagrant/unit/{node}"
        assert vm["create"] == f"python3 -m vagrantbox machine up {where} --provider libvirt"
        assert vm["update"] == f"python3 -m vagrantbox machine reload {where} --provider libvirt"
        assert vm["delete"] == f"python3 -m vagrantbox machine down {where}"
        assert f'config.vm.define "{node}"' in vm["stdin"] and 'v.driver = "qemu"' in vm["stdin"]
        # Steps run over the VM's SSH connection, as root, with the host key read at creation.
        assert graph.depends_on(f"{node}-identity", f"{node}-vagrant")
    # The first VM is made alone (it adds the box to libvirt's pool and makes the networks);
    # the others wait for it, and only for it.
    for node in nodes[1:]:
        assert graph.depends_on(f"{node}-vagrant", "root-server-vagrant")
    assert not graph.depends_on("client2-vagrant", "client1-vagrant")
    assert graph.result.outputs()["machines"]["client1"]["ssh"] == \
        "cd .hashicluster/vagrant/unit/client1 && vagrant ssh client1"


def test_vagrant_memory_change_touches_only_that_roles_vms(key_file: Path) -> None:
    before = lab(key_file, VAGRANT_STACK)
    machines = ('{"provider": "vagrant", "driver": "qemu", "box": "hashicluster/bookworm", '
                '"memory": {"lb": 768}}')
    after = lab(key_file, dict(VAGRANT_STACK, machines=machines))
    assert before.changed(after) == {"frontend-lb-vagrant"}
    assert "v.memory = 768" in after.inputs("frontend-lb-vagrant")["stdin"]


def test_acl_steps_hand_each_user_its_own_token(key_file: Path) -> None:
    graph = lab(key_file)
    # Consul: the step gets every token's secret on stdin, never in its text.
    consul = graph.inputs("consul-acl")
    lines = dict(line.split(" ", 1) for line in consul["stdin"].splitlines())
    assert set(lines) == {"root", "frontend", "client1", "client2", "client3", "nomad", "consul-template",
                          "status", "dns"}
    assert lines["status"] == "MOCK-SECRET-consul_status_token"
    # the DNS token: every agent's default token (what a DNS query is answered with)
    assert lines["dns"] == "MOCK-SECRET-consul_dns_token"
    assert "policy hashicluster-dns " in consul["create"]
    assert lines["client1"] == "MOCK-SECRET-consul_agent_token-of-client1-credentials"
    assert "MOCK-SECRET" not in consul["create"]
    assert "policy hashicluster-node-client1 " in consul["create"]
    # Nomad: the step prints the tokens Nomad made; its stdout is a secret nothing logs.
    nomad = graph.inputs("nomad-acl")
    assert nomad["logging"] == "stderr"
    assert "stdout" in graph.get("nomad-acl").additional_secret_outputs
    client = dict(line.split(" ", 1) for line in graph.inputs("client1-nomad")["stdin"].splitlines())
    token = base64.b64decode(client["/etc/nomad.d/api.token"].split()[2]).decode().strip()
    assert token == "11111111-2222-4333-8444-555555555555"  # the machines' token
    server = dict(line.split(" ", 1) for line in graph.inputs("root-server-nomad")["stdin"].splitlines())
    token = base64.b64decode(server["/etc/nomad.d/api.token"].split()[2]).decode().strip()
    assert token == "MOCK-SECRET-nomad_management_token"
    # The job resources use their own token.
    assert graph.inputs("job-fib")["token"] == "66666666-7777-4888-8999-aaaaaaaaaaaa"
    # `./run status` reads with read-only tokens of its own (secret outputs), never a management one.
    assert "policy hashicluster-status " in consul["create"] and "token status " in consul["create"]
    assert "token status hashicluster-status hashicluster-status" in nomad["create"]
    # Only the servers' Consul config holds the management token.
    def acl_hcl(node: str) -> str:
        bundle = dict(line.split(" ", 1) for line in graph.inputs(f"{node}-consul")["stdin"].splitlines())
        return base64.b64decode(bundle["/etc/consul.d/acl.hcl"].split()[2]).decode()
    assert "initial_management" in acl_hcl("root-server") and "initial_management" not in acl_hcl("client1")


def test_two_tier_puts_a_backend_balancer_on_every_client(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, loadBalancing="two-tier"))
    for client in ("client1", "client2", "client3"):
        nginx = graph.inputs(f"{client}-nginx")["create"]
        assert "listen 10.210.1.3" in nginx and ":8090 default_server;" in nginx
        assert graph.depends_on(f"{client}-consul-template", f"{client}-nginx")
        assert graph.depends_on("cluster-ready", f"{client}-consul-template")
        unit = graph.inputs(f"{client}-consul-template")["create"]
        assert f"Environment=HASHICLUSTER_NODE={client}" in unit
        # Its Consul service carries the node's token: a secret file on stdin.
        assert "/etc/consul.d/backend.hcl 0640 consul " in graph.inputs(f"{client}-consul")["stdin"]
    front = graph.inputs("frontend-lb-consul-template")["create"]
    assert 'range service "hashicluster-backend|passing"' in front
    one_tier = lab(key_file)
    assert "client1-nginx" not in one_tier.names()


def test_docker_comes_before_nomad_on_every_client_and_only_there(key_file: Path) -> None:
    graph = lab(key_file)
    for i in (1, 2, 3):
        assert graph.depends_on(f"client{i}-nomad", f"client{i}-docker")
        assert graph.depends_on(f"client{i}-cadvisor", f"client{i}-docker")  # it looks for Docker at start
        assert "--containers" in graph.inputs(f"client{i}-lab")["create"]
    assert "--containers" not in graph.inputs("root-server-lab")["create"]
    assert "--containers" not in graph.inputs("frontend-lb-lab")["create"]
    engines = {name for name in graph.names() if name.endswith("-docker")}
    assert engines == {"client1-docker", "client2-docker", "client3-docker"}


def test_fibs_image_is_built_on_the_first_client_and_named_by_the_job(key_file: Path) -> None:
    graph = lab(key_file)
    assert graph.parent_name("fib-image") == "client1"
    # as soon as client1 runs Docker and the registry works: not after the servers
    assert graph.depends_on("fib-image", "client1-docker")
    assert graph.depends_on("fib-image", "frontend-lb-docker-registry")
    assert not graph.waits_for("fib-image", "nomad-servers-ready")
    assert not graph.waits_for("fib-image", "client1-nomad")
    # client1's roll turn (which may restart Docker or reboot it) waits for the build; after it,
    # the image is in the registry (built then if the first build waited for that reboot)
    assert graph.depends_on("client1-roll", "fib-image")
    assert graph.parent_name("fib-image-pushed") == "client1"
    assert graph.depends_on("fib-image-pushed", "client1-rejoin")
    assert graph.depends_on("fib-image-pushed", "fib-image")
    assert graph.depends_on("job-fib", "fib-image-pushed")
    image = graph.inputs("job-fib")["variables"]["image"]
    assert image.startswith("frontend.lb.demo:5000/fib:") and image != "frontend.lb.demo:5000/fib:latest"
    step = graph.inputs("fib-image")
    fib = images.job_image(cfg.load(LAB_STACK, "unit", fake_pins), "fib")
    assert fib is not None and step["triggers"] == [fib.digest]
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(step["stdin"]))) as context:
        assert sorted(context.getnames()) == ["Dockerfile", "fib.py"]
    assert f"--tag {image} " in step["create"]
    assert "fib-image-pushed builds" in step["create"]  # it leaves the build to it while Docker waits
    pushed = graph.inputs("fib-image-pushed")
    assert pushed["triggers"] == step["triggers"] and pushed["stdin"] == step["stdin"]
    assert f"--tag {image} " in pushed["create"] and "fib-image-pushed builds" not in pushed["create"]


def test_a_change_in_fibs_directory_changes_its_image_and_its_job_only(
        key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = lab(key_file)
    jobs_dir = tmp_path / "jobs"
    shutil.copytree(cfg.JOBS_DIR, jobs_dir)
    (jobs_dir / "fib" / "fib.py").write_text((jobs_dir / "fib" / "fib.py").read_text() + "# changed\n")
    monkeypatch.setattr(cfg, "JOBS_DIR", jobs_dir)
    monkeypatch.setattr(images, "JOBS_DIR", jobs_dir)
    after = lab(key_file)
    assert before.changed(after) == {"fib-image", "fib-image-pushed", "job-fib"}
    assert before.inputs("job-fib")["variables"] != after.inputs("job-fib")["variables"]


def test_the_raw_exec_variant_of_fib_runs_no_image(key_file: Path) -> None:
    graph = lab(key_file, dict(LAB_STACK, jobs='["fib-raw-exec"]'))
    assert not {"fib-image", "fib-image-pushed"} & set(graph.names())
    assert graph.inputs("job-fib-raw-exec")["variables"] == {}
    raw_exec_on = 'plugin "raw_exec" {\n  config {\n    enabled = true'
    assert raw_exec_on in graph.inputs("client1-nomad")["create"]
    assert raw_exec_on not in lab(key_file).inputs("client1-nomad")["create"]


def test_every_machine_forwards_consul_names_and_clients_containers_use_it(key_file: Path) -> None:
    graph = lab(key_file)
    for node in NODES:
        step = graph.inputs(f"{node}-dnsmasq")["create"]
        assert "server=/consul/127.0.0.1#8600" in step
        # after the machine's Consul (which, on any but a server, is after Consul's ACLs)
        assert graph.depends_on(f"{node}-dnsmasq", f"{node}-consul")
        assert graph.depends_on("cluster-ready", f"{node}-dnsmasq")
    assert graph.depends_on("root-server-dnsmasq", "consul-acl")  # the DNS token exists
    assert graph.depends_on("client1-consul", "consul-acl")
    assert "listen-address=127.0.0.1,10.210.1.31" in graph.inputs("client1-dnsmasq")["create"]
    assert "listen-address=127.0.0.1\n" in graph.inputs("root-server-dnsmasq")["create"]
    assert '"dns": ["10.210.1.31"]' in graph.inputs("client1-docker")["create"]
