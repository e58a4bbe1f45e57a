"""Every script the program hands to the machines (each step's create, update and delete, as
rendered from templates/steps/), for the golden layouts: compared with the golden files in
tests/render/golden/<layout>/<machine>/steps/, and checked by `bash -n` and shellcheck.

The scripts are taken from the program itself, run under Pulumi mocks, so the golden files are
exactly what the steps carry. A step's update script is kept only where it differs from its
create script.

Regenerate the golden files after a deliberate change:
    HASHICLUSTER_UPDATE_GOLDEN=1 ./venv/bin/python -m pytest tests/render
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from cluster import program
from cluster.config import ClusterSpec
from tests.unit.mocks import run_program

from .test_render import GOLDEN, RAW_LAYOUTS, pins

Scripts = dict[str, str]  # golden path under the layout's directory -> script


def uploads(spec: ClusterSpec, arches: Sequence[str]) -> dict[str, str]:
    """Stands in for the toolchain's binaries: this file will do as the asset."""
    return {p: __file__ for p in ("consul", "nomad", "consul-template", "cadvisor")}


def program_scripts(raw: dict[str, str], key_file: Path) -> Scripts:
    """Every remote step's scripts, keyed `<machine>/steps/<step>/<create|update|delete>.sh`."""
    graph = run_program(lambda: program.build(raw, "render", check_network=False, pins=pins,
                                              local_binaries=uploads), key_file)
    scripts: Scripts = {}
    for name in sorted(graph.names()):
        if graph.get(name).type != "command:remote:Command":
            continue
        inputs = graph.inputs(name)
        where = f"{graph.parent_name(name)}/steps/{name}"
        for kind in ("create", "update", "delete"):
            text = inputs.get(kind)
            if text and not (kind == "update" and text == inputs.get("create")):
                scripts[f"{where}/{kind}.sh"] = text
    return scripts


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scripts]:
    key_file = tmp_path_factory.mktemp("key") / "id_ed25519"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n")
    return {layout: program_scripts(raw, key_file) for layout, raw in RAW_LAYOUTS.items()}


@pytest.fixture(scope="module")
def script_files(rendered: dict[str, Scripts], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every distinct script, written to a file of its own."""
    root = tmp_path_factory.mktemp("scripts")
    seen: dict[str, Path] = {}
    for layout, scripts in rendered.items():
        for where, text in scripts.items():
            if text not in seen:
                path = root / layout / where
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                seen[text] = path
    return list(seen.values())


@pytest.mark.parametrize("layout", list(RAW_LAYOUTS))
def test_scripts_match_golden_files(layout: str, rendered: dict[str, Scripts]) -> None:
    root = GOLDEN / layout
    scripts = rendered[layout]
    assert scripts, f"{layout}: no step script rendered"
    if os.environ.get("HASHICLUSTER_UPDATE_GOLDEN"):
        for old in root.glob("*/steps/**/*.sh"):
            old.unlink()
        for where, text in scripts.items():
            (root / where).parent.mkdir(parents=True, exist_ok=True)
            (root / where).write_text(text)
    for where, text in scripts.items():
        golden = root / where
        assert golden.exists(), f"no golden file {golden}: run with HASHICLUSTER_UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{golden} differs from the rendered script"
    expected = {str(p.relative_to(root)) for p in root.glob("*/steps/**/*.sh")}
    assert expected == set(scripts), "golden scripts of steps that no longer exist"


def test_every_layout_has_the_steps_of_its_machines(rendered: dict[str, Scripts]) -> None:
    """The comparison above covers what matters: each kind of step is there."""
    single, ha, open_ = rendered["single"], rendered["ha"], rendered["open"]
    for where in ("root-server/steps/root-server-identity", "root-server/steps/root-server-consul",
                  "root-server/steps/root-server-nomad", "root-server/steps/consul-servers-ready",
                  "root-server/steps/consul-acl", "root-server/steps/nomad-servers-ready",
                  "root-server/steps/nomad-acl", "root-server/steps/root-server-roll",
                  "root-server/steps/cluster-ready", "client1/steps/client1-cadvisor",
                  "frontend-lb/steps/frontend-lb-nginx", "frontend-lb/steps/frontend-lb-consul-template"):
        assert f"{where}/create.sh" in single, where
    # Consul's and Nomad's steps stage a change on a running cluster: an update of their own.
    assert "client1/steps/client1-consul/update.sh" in single
    assert "client1/steps/client1-cadvisor/update.sh" not in single
    assert "server2/steps/server2-roll-leader/create.sh" in ha
    assert not any("-acl/" in where for where in open_)
    assert "client1/steps/client1-nginx/create.sh" in rendered["two-tier"]


def test_every_script_parses(script_files: list[Path]) -> None:
    assert len(script_files) > 50  # every kind of step, in every layout
    for path in script_files:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


@pytest.fixture(scope="module")
def shellcheck() -> str:
    """The shellcheck program (`./run test` installs it)."""
    found = shutil.which("shellcheck")
    if found is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; `./run test` installs it)")
    return found


def test_every_script_passes_shellcheck(script_files: list[Path], shellcheck: str) -> None:
    # The scripts run in root's login shell on the machines: bash.
    proc = subprocess.run([shellcheck, "--shell=bash", "--format=gcc", *map(str, script_files)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(script_files) > 50  # every kind of step, in every layout


def test_shellcheck_does_catch_mistakes(tmp_path: Path, shellcheck: str) -> None:
    """The check above could fail: shellcheck flags what a template might get wrong."""
    bad = tmp_path / "bad.sh"
    bad.write_text('set -eu\nfor f in $(ls /etc/consul.d); do rm $f; done\n')
    proc = subprocess.run([shellcheck, "--shell=bash", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0


def test_the_lab_machines_own_scripts_pass_shellcheck(shellcheck: str) -> None:
    """The lab's scripts (templates/lab): the one that boots a machine (bash, on the host) and
    the one it puts into machines (/bin/sh); each names its shell in its #! line."""
    scripts = sorted((Path(__file__).resolve().parents[2] / "templates" / "lab").glob("*.sh"))
    assert [p.name for p in scripts] == ["boot-machine.sh", "cgroups-rw.sh"]
    proc = subprocess.run([shellcheck, "--format=gcc", *map(str, scripts)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
