"""The steps' shell library (templates/steps/lib.sh), run by bash: its JSON readers, and the
health checks built on them with `api` and `nomad` answering from files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cluster.render import render_script

LIB = render_script("lib.sh")
MEMBERS = [{"Name": "root", "Status": 1, "Tags": {"role": "consul"}},
           {"Name": "server2", "Status": 4, "Tags": {"role": "consul"}},  # left
           {"Name": "client1", "Status": 1, "Tags": {"role": "node"}},
           {"Name": "client2", "Status": 1, "Tags": {"role": "node"}}]


def bash(script: str, stdin: str = "", path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    return subprocess.run(["bash", "-c", f"set -eu\n{LIB}\n{script}"], input=stdin, capture_output=True,
                          text=True, timeout=30, check=False, env=env)


def out(script: str, stdin: Any) -> str:
    proc = bash(script, json.dumps(stdin))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_json_field_prints_strings_as_they_are_and_the_rest_as_json() -> None:
    doc = {"ID": "a b", "Healthy": True, "Count": 3, "Tags": {"role": "node"}}
    assert out("json_field ID", doc) == "a b"
    assert out("json_field Healthy", doc) == "true"
    assert out("json_field Count", doc) == "3"
    assert out("json_field Missing", doc) == ""
    assert out("json_field Tags", doc) == '{"role": "node"}'


@pytest.mark.parametrize(("args", "expected"), [
    (". Status=1", 3),
    (". Status=1 Tags.role=consul", 1),
    (". Status!=1", 1),
    (". Name^=client", 2),
    (". Tags.role=node Name^=client Status=1", 2),
    (".", 4),
])
def test_json_count_counts_the_items_that_match_every_condition(args: str, expected: int) -> None:
    assert out(f"json_count {args}", MEMBERS) == str(expected)


def test_json_count_reads_a_nested_list_and_an_objects_values() -> None:
    health = {"Healthy": False, "Servers": [{"SerfStatus": "alive", "Healthy": True},
                                            {"SerfStatus": "failed", "Healthy": False}]}
    assert out("json_count Servers SerfStatus=alive Healthy=true", health) == "1"
    checks = {"c1": {"CheckID": "_nomad-check-c1", "Status": "passing"},
              "serfHealth": {"CheckID": "serfHealth", "Status": "critical"}}
    assert out("json_count . CheckID^=_nomad-check-", checks) == "1"
    assert out("json_count . Status!=passing", checks) == "1"
    assert out("json_count . CheckID!^=_nomad-check-", checks) == "1"
    assert out("json_count . CheckID!^=_nomad-check- Status=passing", checks) == "0"
    assert out("json_count Missing", health) == "0"


@pytest.mark.parametrize("reader", ["json_count .", "json_field ID", "json_rows ID"])
def test_the_readers_fail_and_print_nothing_on_what_is_not_json(reader: str) -> None:
    proc = bash(reader, "curl: (7) Failed to connect\n")
    assert (proc.returncode, proc.stdout) == (1, ""), proc


@pytest.fixture()
def answers(tmp_path: Path) -> Path:
    """A `curl` that answers /v1/agent/members from tmp_path/members.json, and a `nomad`
    whose `node status -self -json` prints tmp_path/self.json."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(f'#!/bin/sh\nfor a; do url=$a; done\ncase $url in\n'
                                  f'  */v1/agent/members) cat {tmp_path}/members.json;;\n'
                                  '  *) exit 22;;\nesac\n')
    (bin_dir / "nomad").write_text('#!/bin/sh\n[ "$*" = "node status -self -json" ] && '
                                   f'cat {tmp_path}/self.json\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "members.json").write_text(json.dumps(MEMBERS))
    (tmp_path / "self.json").write_text(json.dumps({"ID": "n1", "Status": "ready"}))
    return tmp_path


API = 'api() { curl -sf "$@"; }; CONSUL_HTTP_ADDR=http://127.0.0.1:8500\n'


@pytest.mark.parametrize(("role", "count", "holds"), [
    ("server", 1, True), ("server", 2, False), ("client", 2, True), ("client", 3, False)])
def test_alive_counts_the_alive_members_of_a_role(answers: Path, role: str, count: int, holds: bool) -> None:
    proc = bash(API + f"alive {role} {count}", path=answers / "bin")
    assert proc.returncode == (0 if holds else 1), proc


def test_alive_is_false_when_consul_does_not_answer(answers: Path) -> None:
    (answers / "members.json").write_text("")
    assert bash(API + "alive client 0", path=answers / "bin").returncode == 1


@pytest.mark.parametrize(("status", "ready"), [("ready", True), ("initializing", False), ("down", False)])
def test_nomad_node_ready_reads_the_nodes_status(answers: Path, status: str, ready: bool) -> None:
    (answers / "self.json").write_text(json.dumps({"ID": "n1", "Status": status}))
    proc = bash('nomad_node_ready "http://127.0.0.1:4646"', path=answers / "bin")
    assert proc.returncode == (0 if ready else 1), proc


# ------------------------------------------------------------------ giving a machine back

def lib_run(tmp_path: Path, script: str) -> None:
    """SCRIPT after the library, for product `demo`, with HC_STATE under TMP_PATH and a
    systemctl stand-in that logs its calls to tmp_path/calls (every unit disabled)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n'
                         '[ "$1" != is-enabled ] || echo disabled\n')
    systemctl.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", HC_STATE=str(tmp_path / "state"))
    proc = subprocess.run(["bash", "-c", f"set -eu\n{LIB}\nproduct=demo\n{script}"], capture_output=True,
                          text=True, timeout=30, check=False, env=env)
    assert proc.returncode == 0, proc.stderr


def test_give_back_undoes_what_the_records_say(tmp_path: Path) -> None:
    machine = tmp_path / "machine"
    (machine / "etc").mkdir(parents=True)
    own = machine / "etc" / "own.conf"
    own.write_text("the machine's own\n")
    data = machine / "data"
    data.mkdir(mode=0o711)
    data.chmod(0o711)
    new = machine / "etc" / "new.d" / "sub" / "new.conf"
    lib_run(tmp_path, f"""
changed=0
for path in {own} {new}; do tmp=$(mktemp); echo ours > "$tmp"; put_file "$tmp" "$path" 0644 "$(id -un)"; done
make_dir {machine}/made 0750 "$(id -un)"
claim_data {data}
claim_data {machine}/fresh
keep_service
mkdir -p {machine}/fresh && touch {machine}/fresh/x {data}/image && chmod 0710 {data}
# a second run keeps the first original
tmp=$(mktemp); echo again > "$tmp"; put_file "$tmp" {own} 0644 "$(id -un)"
""")
    assert own.read_text() == "again\n" and new.read_text() == "ours\n"
    lib_run(tmp_path, "give_back")
    assert own.read_text() == "the machine's own\n"  # the original back
    assert not (machine / "etc" / "new.d").exists()  # the file, and the directory its placement made
    assert not (machine / "made").exists() and not (machine / "fresh").exists()
    assert data.is_dir() and list(data.iterdir()) == [] and oct(data.stat().st_mode & 0o777) == "0o711"
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["created", "originals", "placed"]
    assert list((tmp_path / "state" / "placed").iterdir()) == []  # nothing left to give back
    # The service was disabled before: nothing turns it on again.
    assert "enable" not in (tmp_path / "calls").read_text().split()
