"""The stack file's machine provider, as `./run` reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.stackfile import machine_provider, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("stack_file", "provider"), [("stacks/lab.yaml", "nspawn"),
                                                       ("stacks/dev.yaml", "vagrant")])
def test_the_project_stacks(stack_file: str, provider: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provider", str(ROOT / stack_file)]) == 0
    assert capsys.readouterr().out == f"{provider}\n"


@pytest.mark.parametrize("stack", [None, {}, {"config": None}, {"config": {"hashicluster:domain": "x"}},
                                   {"config": {"hashicluster:machines": {"network": "10.0.0.0/24"}}}])
def test_without_a_provider_it_is_the_lab(stack: dict[str, object] | None) -> None:
    assert machine_provider(stack) == "nspawn"


def test_an_unreadable_stack_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "Pulumi.x.yaml"
    bad.write_text("config: [unclosed\n")
    assert main(["provider", str(bad)]) == 3
    assert f"cannot read the stack file {bad}" in capsys.readouterr().err
    assert main(["provider"]) == 2


def test_same_config_ignores_what_pulumi_adds(tmp_path: Path) -> None:
    preset = ROOT / "stacks" / "lab.yaml"
    local = tmp_path / "Pulumi.lab.yaml"
    local.write_text(preset.read_text() + "encryptionsalt: v1:abc=:v1:def:ghi==\n")
    assert main(["same-config", str(preset), str(local)]) == 0
    local.write_text(preset.read_text().replace("clients: 3", "clients: 4"))
    assert main(["same-config", str(preset), str(local)]) == 1
