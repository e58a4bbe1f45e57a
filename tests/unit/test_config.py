"""Config validation: good stacks load, every bad value names its key and the fix."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

from cluster import binaries
from cluster import config as cfg

from .conftest import LAB_STACK, fake_pins

ROOT = Path(__file__).resolve().parents[2]


def stack_file_config(stack: str) -> dict[str, str]:
    """Read the preset stacks/<stack>.yaml the way the engine hands it to the program: values as strings,
    objects as JSON."""
    data = yaml.safe_load((ROOT / "stacks" / f"{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value if isinstance(value, str) else json.dumps(value)
            for key, value in data.items()}


def test_lab_stack_file_is_valid() -> None:
    spec = cfg.load(stack_file_config("lab"), "lab", fake_pins)
    assert spec.install.source == "upload"
    assert spec.machines.provider == "nspawn"
    assert spec.machines.network == ipaddress.IPv4Network("10.210.1.0/24")
    assert (spec.servers, spec.clients, spec.domain) == (1, 3, "demo")


def test_dev_stack_file_is_valid_vagrant() -> None:
    # The release pins come from toolchain/versions.toml (no toolchain install needed).
    spec = cfg.load(stack_file_config("dev"), "dev", binaries.defaults)
    assert spec.install.source == "release"
    assert spec.install.consul.version == "1.14.7" and len(spec.install.consul.sha256) == 64
    assert spec.machines.provider == "vagrant"
    assert spec.machines.vagrant is not None
    assert spec.machines.vagrant.provider == "libvirt"
    assert spec.machines.vagrant.box == "debian/bookworm64"


def test_defaults() -> None:
    spec = cfg.load({"machines": '{"provider": "nspawn"}'}, "s", fake_pins)
    assert spec.install.source == "release" and spec.install.mirror == cfg.DEFAULT_MIRROR
    assert (spec.servers, spec.clients, spec.domain, spec.datacenter) == (1, 3, "demo", "dc1")
    assert str(spec.machines.network) == "10.210.1.0/24"


@pytest.mark.parametrize(
    ("key", "value", "key_in_error", "words"),
    [
        ("clients", "three", "hashicluster:clients", "whole number"),
        ("clients", "0", "hashicluster:clients", "from 1 to"),
        ("clients", "true", "hashicluster:clients", "whole number"),
        ("servers", "2", "hashicluster:servers", "odd number"),
        ("servers", "11", "hashicluster:servers", "from 1 to 9"),
        ("domain", "Demo_Domain", "hashicluster:domain", "lowercase DNS domain"),
        ("datacenter", "dc 1", "hashicluster:datacenter", "datacenter name"),
        ("machines", "nspawn", "hashicluster:machines", "expected an object"),
        ("machines", '{"provider": "docker"}', "hashicluster:machines.provider", "not a machine provider"),
        ("machines", '{"provider": "nspawn", "network": "10.210.1.0/33"}',
         "hashicluster:machines.network", "CIDR"),
        ("machines", '{"provider": "nspawn", "network": "8.8.8.0/24"}',
         "hashicluster:machines.network", "not a private network"),
        ("machines", '{"provider": "nspawn", "network": "192.168.1.0/24"}',
         "hashicluster:machines.network", "outside the lab switch"),
        ("machines", '{"provider": "nspawn", "network": "10.210.0.0/24"}',
         "hashicluster:machines.network", "outside the lab switch"),
        ("machines", '{"provider": "nspawn", "network": "10.210.1.0/28"}',
         "hashicluster:machines.network", "too small"),
        ("machines", '{"provider": "nspawn", "netwrok": "10.210.1.0/24"}',
         "hashicluster:machines.netwrok", "unknown setting"),
        ("machines", '{"provider": "vagrant", "driver": "xen"}', "hashicluster:machines.driver",
         "not a libvirt driver"),
        ("machines", '{"provider": "vagrant", "memory": 64}', "hashicluster:machines.memory",
         "from 256"),
        ("machines", '{"provider": "vagrant", "box": "a box"}', "hashicluster:machines.box",
         "not a Vagrant box name"),
        ("cleints", "3", "hashicluster:cleints", "unknown setting"),
        ("install", '{"source": "ftp"}', "hashicluster:install.source", "not an install source"),
        ("install", '{"source": "release", "mirror": "releases"}', "hashicluster:install.mirror",
         "not an http(s) URL"),
        ("consul", '{"version": "1.14"}', "hashicluster:consul.version", "not a version"),
        ("nomad", '{"sha256": "abc"}', "hashicluster:nomad.sha256", "not a sha256"),
        ("nomad", '{"verison": "1.6.3"}', "hashicluster:nomad.verison", "unknown setting"),
        ("region", "Europe West", "hashicluster:region", "region name"),
        ("clientSettings", '{"client9": {}}', "hashicluster:clientSettings.client9",
         "no client named"),
        ("clientSettings", '{"client1": {"meta": {"rack": "a\\"b"}}}',
         "hashicluster:clientSettings.client1.meta", "string values"),
        ("clientSettings", '{"client1": {"class": "x"}}',
         "hashicluster:clientSettings.client1.class", "unknown setting"),
        ("docker", '{"version": "twenty"}', "hashicluster:docker.version", "not a Debian package version"),
        ("docker", '{"package": "docker-ce"}', "hashicluster:docker.package", "unknown setting"),
        ("docker", "20.10", "hashicluster:docker", "expected an object"),
    ],
)
def test_bad_value_names_key_and_fix(key: str, value: str, key_in_error: str, words: str) -> None:
    raw = dict(LAB_STACK)
    raw[key] = value
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(raw, "s", fake_pins)
    message = str(info.value)
    assert message.startswith(key_in_error + ":"), message
    assert words in message
    assert "Fix: " in message


def test_docker_is_pinned_to_debian_12s_package_unless_the_stack_says_otherwise() -> None:
    default = cfg.load(dict(LAB_STACK), "s", fake_pins).docker
    assert default == cfg.PackagePin("docker.io", "20.10.24+dfsg1-1+deb12u1+b6")
    trixie = cfg.load({**LAB_STACK, "docker": '{"version": "26.1.5+dfsg1-9+b9"}'}, "s", fake_pins)
    assert trixie.docker == cfg.PackagePin("docker.io", "26.1.5+dfsg1-9+b9")


def test_raw_exec_is_on_only_when_a_listed_job_uses_it() -> None:
    assert not cfg.load(dict(LAB_STACK), "s", fake_pins).raw_exec
    assert cfg.load({**LAB_STACK, "jobs": '["fib-raw-exec"]'}, "s", fake_pins).raw_exec
    assert not cfg.load({**LAB_STACK, "jobs": "[]"}, "s", fake_pins).raw_exec


def test_a_job_file_that_is_not_hcl_is_refused_naming_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken.nomad.hcl").write_text('job "broken" {\n  group "g" {\n')
    monkeypatch.setattr(cfg, "JOBS_DIR", tmp_path)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load({**LAB_STACK, "jobs": '["broken"]'}, "s", fake_pins)
    message = str(info.value)
    assert message.startswith("hashicluster:jobs: jobs/broken.nomad.hcl: not a Nomad job file"), message
    assert "Fix: fix jobs/broken.nomad.hcl" in message


def test_missing_machines_is_an_error() -> None:
    with pytest.raises(cfg.ConfigError, match=r"hashicluster:machines: not set.*Fix: pulumi config set"):
        cfg.load({}, "s")


def test_release_source_needs_a_pinned_sha256() -> None:
    raw = dict(LAB_STACK, install='{"source": "release"}', consul='{"version": "1.14.11"}')
    with pytest.raises(cfg.ConfigError, match=r"hashicluster:consul.sha256: no sha256 is pinned.*"
                       r"consul_1.14.11_SHA256SUMS"):
        cfg.load(raw, "s", lambda source: {})


def test_a_new_version_does_not_inherit_the_default_sha256() -> None:
    raw = dict(LAB_STACK, install='{"source": "release"}', nomad='{"version": "1.6.4"}')
    with pytest.raises(cfg.ConfigError, match=r"hashicluster:nomad.sha256"):
        cfg.load(raw, "s", fake_pins)


def test_another_version_the_toolchain_has_gives_its_sha256() -> None:
    """Defaults keyed "product@version" (the toolchain's extra versions, see
    cluster/binaries.py) give the sha256 of a stack that pins only that version."""
    def pins(source: cfg.InstallSource) -> dict[str, cfg.BinaryPin]:
        known = fake_pins(source)
        known["nomad@1.6.2"] = cfg.BinaryPin("nomad", "1.6.2", "e" * 64, known["nomad"].url)
        return known

    spec = cfg.load(dict(LAB_STACK, nomad='{"version": "1.6.2"}'), "s", pins)
    assert spec.install.nomad == cfg.BinaryPin("nomad", "1.6.2", "e" * 64, pins("upload")["nomad"].url)
    assert spec.install.consul == fake_pins("upload")["consul"]
    explicit = cfg.load(dict(LAB_STACK, nomad=f'{{"version": "1.6.2", "sha256": "{"f" * 64}"}}'), "s", pins)
    assert explicit.install.nomad.sha256 == "f" * 64
    assert cfg.load(dict(LAB_STACK, nomad='{"version": "1.6.1"}'), "s", pins).install.nomad.sha256 == ""
