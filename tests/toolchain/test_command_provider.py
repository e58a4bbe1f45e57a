"""The project's own command provider (toolchain/commandprovider) under the real Pulumi CLI.

Every test here is slow (marked ``long``): the Go unit tests compile the provider's package,
the others run `pulumi up/preview/destroy` with the installed Pulumi CLI and
pulumi-resource-command (``python3 -m toolchain ensure pulumi pulumi-resource-command``) on a
small program in a temporary directory, with a file:// backend and the project's venv.
The remote tests (also marked ``lab``) need root: they share a lab machine (``cpt-*`` on
10.210.5.0/24) and run Pulumi inside the lab network namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolchain.api import installed
from toolchain.errors import ToolchainError
from toolchain.gobuild import copy_local_packages, go_env, wrapper_go_mod
from toolchain.pins import load_pins

pytestmark = pytest.mark.long

ROOT = Path(__file__).resolve().parents[2]
STACK = "test"
LAB_NETWORK = "10.210.5"
# A guard against a hung command, not a limit on speed: go vet and go test of the provider
# took 102 s on a quiet 2-core host and more than 120 s on a busy one.
TIMEOUT = 900.0

PULUMI_YAML = """\
name: cpt
description: A throw-away program for the command provider tests.
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
"""

# The program creates the commands and copies that spec.json describes, and exports the
# commands' outputs. A copy's "source" is {"file": PATH}, {"text": TEXT} or {"dir": PATH}.
PROGRAM = '''\
"""Resources described by spec.json: {"local"|"remote"|"copy": {NAME: ARGS}}."""

import json
from pathlib import Path

import pulumi
from pulumi_command import local, remote

spec = json.loads(Path("spec.json").read_text())
for name, args in spec.get("local", {}).items():
    command = local.Command(name, **args)
    pulumi.export(f"{name}_stdout", command.stdout)
for name, args in spec.get("remote", {}).items():
    connection = remote.ConnectionArgs(**args.pop("connection"))
    command = remote.Command(name, connection=connection, **args)
    pulumi.export(f"{name}_stdout", command.stdout)
for name, args in spec.get("copy", {}).items():
    connection = remote.ConnectionArgs(**args.pop("connection"))
    source = args.pop("source")
    if "file" in source:
        asset = pulumi.FileAsset(source["file"])
    elif "text" in source:
        asset = pulumi.StringAsset(source["text"])
    else:
        asset = pulumi.FileArchive(source["dir"])
    remote.CopyToRemote(name, connection=connection, source=asset, **args)
'''


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output if it fails and ``check`` is set."""
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=TIMEOUT, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                             f"{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def installed_binary(tool: str) -> Path:
    """Path of a toolchain binary; skips the test when the tool is not installed."""
    try:
        return installed(tool).path
    except ToolchainError as exc:
        pytest.skip(f"{exc} (these tests use the installed toolchain)")


@dataclass
class Project:
    """A Pulumi project in a temporary directory with its own backend and stack."""

    path: Path
    env: dict[str, str]
    in_lab: bool = False

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Describe the commands the next run creates."""
        (self.path / "spec.json").write_text(json.dumps(spec, indent=2))

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `pulumi ARGS` on the stack (inside the lab network if ``in_lab``)."""
        cmd = ["pulumi", "--cwd", str(self.path), *args, "--stack", STACK, "--non-interactive"]
        if self.in_lab:
            cmd = ["python3", "-m", "lab", "exec", "--", *cmd]
        return run(cmd, cwd=ROOT, env=self.env, check=check)

    def up(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pulumi up --yes --skip-preview`."""
        return self.pulumi("up", "--yes", "--skip-preview", *args, check=check)

    def outputs(self) -> dict[str, Any]:
        """The stack outputs."""
        out: dict[str, Any] = json.loads(self.pulumi("stack", "output", "--json").stdout)
        return out

    def preview_ops(self) -> dict[str, str]:
        """What `pulumi preview` would change about each command or copy, by name."""
        preview = json.loads(self.pulumi("preview", "--json").stdout)
        return {step["urn"].rsplit("::", 1)[1]: step["op"] for step in preview.get("steps", [])
                if step["urn"].split("::")[2].startswith("command:") and step["op"] != "same"}

    def resources(self) -> dict[str, dict[str, Any]]:
        """Command resources in the state, by name."""
        state = json.loads(self.pulumi("stack", "export").stdout)
        found = {}
        for res in state["deployment"].get("resources", []):
            if res["type"].startswith("command:"):
                found[res["urn"].rsplit("::", 1)[1]] = res
        return found


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project and stack, using the installed Pulumi CLI and command provider."""
    pulumi = installed_binary("pulumi")
    provider = installed_binary("pulumi-resource-command")
    path = tmp_path / "project"
    path.mkdir()
    (path / "Pulumi.yaml").write_text(PULUMI_YAML)
    (path / "__main__.py").write_text(PROGRAM)
    (path / "venv").symlink_to(ROOT / "venv")
    backend = tmp_path / "backend"
    backend.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        PATH=f"{pulumi.parent}:{provider.parent}:{env.get('PATH', '/usr/bin:/bin')}",
        PULUMI_HOME=str(tmp_path / "pulumi-home"),
        PULUMI_BACKEND_URL=f"file://{backend}",
        PULUMI_CONFIG_PASSPHRASE="cpt-passphrase",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
    )
    proj = Project(path, env)
    run(["pulumi", "stack", "init", STACK, "--non-interactive"], cwd=path, env=env)
    # A stack without any config trips the language host; give it one value.
    proj.pulumi("config", "set", "cpt:purpose", "command-provider-test")
    return proj


def test_go_unit_tests(tmp_path: Path) -> None:
    """gofmt, go vet and go test of toolchain/commandprovider, in a wrapper module as built."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not on PATH")
    pins = load_pins()
    pin = pins.tool("pulumi-resource-command")
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text(wrapper_go_mod(pin))
    copy_local_packages(pin, src)
    env = go_env(pin, pins.settings)
    run([go, "mod", "tidy"], cwd=src, env=env)
    unformatted = run(["gofmt", "-l", "commandprovider"], cwd=src, env=env).stdout.strip()
    assert unformatted == "", f"gofmt would change: {unformatted}"
    run([go, "vet", "./commandprovider"], cwd=src, env=env)
    run([go, "test", "-count=1", "./commandprovider"], cwd=src, env=env)


def test_local_command_lifecycle(project: Project, tmp_path: Path) -> None:
    """Create, no-op, refresh, update in place, replace on triggers, delete: a local command."""
    marker = tmp_path / "deleted.txt"
    delete = f'echo "deleted[$PULUMI_COMMAND_STDOUT]" >> {marker}'
    project.write_spec({"local": {"hello": {
        "create": 'echo "hello $WHO"; readlink /proc/$PPID/exe',
        "environment": {"WHO": "it's \"me\""},
        "delete": delete,
    }}})
    project.up()
    lines = project.outputs()["hello_stdout"].split("\n")
    assert lines[0] == "hello it's \"me\""
    # The command's parent is the provider process: the engine ran the installed provider.
    assert Path(lines[1]).resolve() == installed_binary("pulumi-resource-command").resolve()

    project.pulumi("up", "--yes", "--expect-no-changes")
    project.pulumi("refresh", "--yes", "--skip-preview", "--expect-no-changes")

    v2 = {"create": 'echo "v2 prev=[$PULUMI_COMMAND_STDOUT]"', "delete": delete,
          "environment": {"WHO": "it's \"me\""}}
    project.write_spec({"local": {"hello": v2}})
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ command:local:Command: (update)" in preview, preview
    assert re.search(r"~ create\s*:", preview) and "(replace)" not in preview, preview
    assert "environment" not in preview, preview
    project.up()
    assert project.outputs()["hello_stdout"] == f"v2 prev=[hello it's \"me\"\n{lines[1]}]"
    assert not marker.exists(), "an update must not run the delete command"

    project.write_spec({"local": {"hello": {**v2, "triggers": ["t1"]}}})
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-command:local:Command: (replace)" in preview and "triggers" in preview, preview
    project.up()
    assert project.outputs()["hello_stdout"] == "v2 prev=[]"  # a new resource has no past
    assert marker.read_text().startswith('deleted[v2 prev=[hello it\'s "me"'), marker.read_text()

    project.pulumi("destroy", "--yes", "--skip-preview")
    assert marker.read_text().splitlines()[-1] == "deleted[v2 prev=[]]"
    assert project.resources() == {}


def test_triggers_update_or_replace(project: Project) -> None:
    """A triggers change runs `update` when there is one (update), else replaces."""
    def spec(trigger: str) -> dict[str, Any]:
        with_update = {"create": "echo created", "triggers": [trigger],
                       "update": 'echo "updated prev=[$PULUMI_COMMAND_STDOUT]"'}
        without = {"create": f"echo created-{trigger}", "triggers": [trigger]}
        return {"local": {"withupdate": with_update, "noupdate": without}}

    project.write_spec(spec("a"))
    project.up()
    ids = {name: res["id"] for name, res in project.resources().items()}
    project.pulumi("up", "--yes", "--expect-no-changes")

    # One resource at a time, so that each preview names the operation of that one only.
    project.write_spec({"local": {**spec("a")["local"], "withupdate": spec("b")["local"]["withupdate"]}})
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ command:local:Command: (update)" in preview, preview
    assert "(replace)" not in preview and "triggers" in preview, preview
    project.write_spec({"local": {**spec("a")["local"], "noupdate": spec("b")["local"]["noupdate"]}})
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-command:local:Command: (replace)" in preview, preview
    assert "(update)" not in preview and "triggers" in preview, preview

    project.write_spec(spec("b"))
    assert project.preview_ops() == {"withupdate": "update", "noupdate": "replace"}
    project.up()
    outputs = project.outputs()
    assert outputs["withupdate_stdout"] == "updated prev=[created]", outputs
    assert outputs["noupdate_stdout"] == "created-b", outputs
    after = {name: res["id"] for name, res in project.resources().items()}
    assert after["withupdate"] == ids["withupdate"], "an update keeps the resource"
    assert after["noupdate"] != ids["noupdate"], "a replacement is a new resource"


def test_failing_command_fails_up(project: Project) -> None:
    """A non-zero exit fails `pulumi up` with the status and output, and records nothing."""
    project.write_spec({"local": {"broken": {
        "create": "echo partial; echo 'it went wrong' >&2; exit 3"}}})
    proc = project.up(check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "local: create command failed: exit status 3" in out, out
    assert "partial" in out and "it went wrong" in out, out
    assert "broken" not in project.resources()


@pytest.fixture(scope="module")
def lab_machine() -> Iterator[dict[str, Any]]:
    """A lab machine `cpt-*` on a free address of 10.210.5.0/24, shared by the remote tests of
    this module and removed after them."""
    if os.geteuid() != 0:
        pytest.skip("lab machines need root")
    status = json.loads(run(["python3", "-m", "lab", "status", "--json"], cwd=ROOT).stdout)
    used = {m.get("address") for m in status}
    free = [f"{LAB_NETWORK}.{n}" for n in range(10, 250) if f"{LAB_NETWORK}.{n}" not in used]
    name = f"cpt-{secrets.token_hex(3)}"
    try:
        up = run(["python3", "-m", "lab", "up", name, "--address", free[0]], cwd=ROOT)
        yield dict(json.loads(up.stdout))
    finally:
        run(["python3", "-m", "lab", "down", name], cwd=ROOT, check=False)


def lab_connection(machine: dict[str, Any]) -> dict[str, Any]:
    """ConnectionArgs (as keyword arguments) for a lab machine, with its host key checked."""
    return {
        "host": machine["address"],
        "user": machine["user"],
        "port": machine["ssh_port"],
        "private_key": Path(machine["private_key_path"]).read_text(),
        "host_key": machine["host_key_public"],
    }


def lab_ssh(machine: dict[str, Any], *command: str) -> str:
    """Run a command on a lab machine as root; its stdout (the remote shell joins the words)."""
    return run(["python3", "-m", "lab", "ssh", machine["name"], *command], cwd=ROOT).stdout


@pytest.mark.lab
def test_remote_command_on_lab_machine(project: Project, lab_machine: dict[str, Any]) -> None:
    """SSH with the lab key and host key check, environment, wrong host key, delete."""
    project.in_lab = True
    key_path = Path(lab_machine["private_key_path"])
    connection = lab_connection(lab_machine)
    greeting = "it's a \"test\" with $HOME and `backticks`\nand two lines"
    good = {
        "connection": connection,
        "environment": {"GREETING": greeting},
        "create": 'printf "%s\\n" "$GREETING"; hostname',
        "delete": 'printf "%s" "deleted[$PULUMI_COMMAND_STDOUT]" > /root/cpt-deleted',
    }
    project.write_spec({"remote": {"r": good}})
    project.up()
    assert project.outputs()["r_stdout"] == f"{greeting}\n{lab_machine['hostname']}"
    conn_state = project.resources()["r"]["outputs"]["connection"]
    assert "ciphertext" in conn_state, "connection must stay secret in the state"
    project.pulumi("up", "--yes", "--expect-no-changes")

    # Another key than the machine's: the lab's client key stands in for a wrong host key.
    wrong = Path(f"{key_path}.pub").read_text().strip()
    bad = {"connection": {**connection, "host_key": wrong, "dial_error_limit": 1}, "create": "true"}
    project.write_spec({"remote": {"r": good, "bad": bad}})
    proc = project.up(check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    address = f"{lab_machine['address']}:{lab_machine['ssh_port']}"
    assert f"host key mismatch for {address}: expected ssh-ed25519 SHA256:" in out, out
    assert "bad" not in project.resources()

    project.write_spec({"remote": {"r": good}})
    project.pulumi("destroy", "--yes", "--skip-preview")
    deleted = lab_ssh(lab_machine, "cat", "/root/cpt-deleted")
    assert deleted == f"deleted[{greeting}\n{lab_machine['hostname']}]"


@pytest.mark.lab
def test_copy_to_remote_on_lab_machine(project: Project, lab_machine: dict[str, Any]) -> None:
    """CopyToRemote of a file (a few MB), a text and a directory; no-op; changed file replaces."""
    project.in_lab = True
    payload = project.path / "payload.bin"
    payload.write_bytes(secrets.token_bytes(5 * 1024 * 1024 + 123))
    payload.chmod(0o755)
    tree = project.path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    base = f"/opt/cpt-{secrets.token_hex(3)}"
    connection = lab_connection(lab_machine)
    spec = {"copy": {
        # A relative FileAsset path is relative to the project, for the provider too.
        "bin": {"connection": connection, "source": {"file": "payload.bin"},
                "remote_path": f"{base}/bin/payload"},
        "motd": {"connection": connection, "source": {"text": "it's $HOME\n"},
                 "remote_path": f"{base}/etc/motd"},
        "tree": {"connection": connection, "source": {"dir": str(tree)},
                 "remote_path": f"{base}/share"},
    }}

    def remote_sha256(path: str) -> str:
        return lab_ssh(lab_machine, "sha256sum", path).split()[0]

    project.write_spec(spec)
    project.up()
    assert remote_sha256(f"{base}/bin/payload") == hashlib.sha256(payload.read_bytes()).hexdigest()
    modes = lab_ssh(lab_machine, "stat", "-c", "'%a %n'", f"{base}/bin/payload", f"{base}/etc/motd",
                    f"{base}/share/tree/sub/b.txt").split("\n")
    assert modes[:3] == [f"755 {base}/bin/payload", f"644 {base}/etc/motd",
                         f"644 {base}/share/tree/sub/b.txt"], modes
    assert lab_ssh(lab_machine, "cat", f"{base}/etc/motd") == "it's $HOME\n"
    assert lab_ssh(lab_machine, "cat", f"{base}/share/tree/a.txt") == "a\n"
    state = project.resources()["bin"]
    assert "ciphertext" in state["outputs"]["connection"], "connection must stay secret"
    assert state["outputs"]["source"]["hash"] == hashlib.sha256(payload.read_bytes()).hexdigest()
    assert state["outputs"]["remotePath"] == f"{base}/bin/payload"
    project.pulumi("up", "--yes", "--expect-no-changes")

    first_id = state["id"]
    payload.write_bytes(secrets.token_bytes(3 * 1024 * 1024))
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-command:remote:CopyToRemote: (replace)" in preview, preview
    assert project.preview_ops() == {"bin": "replace"}
    project.up()
    assert remote_sha256(f"{base}/bin/payload") == hashlib.sha256(payload.read_bytes()).hexdigest()
    assert project.resources()["bin"]["id"] != first_id
    leftovers = lab_ssh(lab_machine, "find", f"{base}/bin", "-name", "'*.upload-*'")
    assert leftovers == "", leftovers

    # Deleting a copy leaves the files on the machine (as upstream's provider does).
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert project.resources() == {}
    assert remote_sha256(f"{base}/bin/payload") == hashlib.sha256(payload.read_bytes()).hexdigest()
    lab_ssh(lab_machine, "rm", "-rf", base)
