"""cluster/binaries.py: the toolchain's pins as stack defaults, and the binaries to upload,
for the default version of each product and for the toolchain's extra versions."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cluster import binaries
from cluster import config as cfg
from tests.toolchain.helpers import tool_table
from toolchain.manifest import Manifest, describe_files, sha256_file, write_manifest
from toolchain.paths import Layout
from toolchain.pins import Pins, parse_pins

from .conftest import LAB_STACK

VERSIONS = {"consul": "1.14.11", "nomad": "1.6.3", "consul-template": "0.42.1", "cadvisor": "0.49.1"}
OLD_NOMAD = "1.6.2"
RELEASE_SHA = {"nomad": "1" * 64, OLD_NOMAD: "2" * 64}


def _tool(name: str, version: str) -> dict[str, Any]:
    """A pin table for one product (made-up modules, file names as the product's)."""
    table = copy.deepcopy(tool_table(version=version, main=name, env=""))
    table["release"]["members"] = [{"path": name, "name": name}]
    table["release"]["sha256"] = RELEASE_SHA.get(name, "TODO")
    table["build"]["require"] = [f"example.com/{name}@v{version}"]
    table["build"]["binaries"][0]["name"] = name
    return table


@pytest.fixture
def pins() -> Pins:
    """The four products at their usual versions, plus Nomad 1.6.2 as an extra version."""
    tools = {name: _tool(name, version) for name, version in VERSIONS.items()}
    tools["nomad"]["versions"] = {OLD_NOMAD: {
        "release": {"sha256": RELEASE_SHA[OLD_NOMAD]},
        "build": {"require": [f"example.com/nomad@v{OLD_NOMAD}"]},
    }}
    return parse_pins({"settings": {"goproxy": "https://proxy.example.invalid"}, "tools": tools})


def install(layout: Layout, tool: str, version: str) -> str:
    """Put a made-up binary with its manifest in the toolchain cache; returns its sha256."""
    tool_dir = layout.tool_dir(tool, version)
    (tool_dir / "bin").mkdir(parents=True)
    (tool_dir / "bin" / tool).write_text(f"#!/bin/sh\necho {tool} {version}\n")
    files = describe_files(tool_dir, [tool])
    write_manifest(tool_dir, Manifest(tool, version, "build", "2023-01-01T00:00:00+00:00", files))
    return files[0].sha256


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A toolchain cache with the default version of every product installed."""
    layout = Layout(tmp_path / "cache" / "toolchain")
    for tool, version in VERSIONS.items():
        install(layout, tool, version)
    return layout


def load(pins: Pins, layout: Layout, source: str = "upload", **products: dict[str, str]) -> cfg.ClusterSpec:
    """A lab stack's spec with the given product pins, defaults from ``pins`` and ``layout``."""
    raw = {**LAB_STACK, "install": json.dumps({"source": source})}
    raw.update({cfg.PRODUCT_KEYS[p]: json.dumps(pin) for p, pin in products.items()})
    return cfg.load(raw, "lab", lambda src: binaries.defaults(src, pins, layout))


def test_defaults_keep_the_default_versions_and_know_the_extra_ones(pins: Pins, layout: Layout) -> None:
    upload = binaries.defaults("upload", pins, layout)
    assert {p: upload[p].version for p in VERSIONS} == VERSIONS
    assert upload["nomad"].sha256 == sha256_file(layout.bin_dir("nomad", "1.6.3") / "nomad")
    assert upload[f"nomad@{OLD_NOMAD}"].version == OLD_NOMAD
    assert upload[f"nomad@{OLD_NOMAD}"].sha256 == "", "not installed: nothing to take"
    sha = install(layout, "nomad", OLD_NOMAD)
    assert binaries.defaults("upload", pins, layout)[f"nomad@{OLD_NOMAD}"].sha256 == sha
    release = binaries.defaults("release", pins, layout)
    assert release["nomad"].sha256 == RELEASE_SHA["nomad"]
    assert release[f"nomad@{OLD_NOMAD}"].sha256 == RELEASE_SHA[OLD_NOMAD]
    assert release["consul"].sha256 == ""


def unpacked(path: str) -> bytes:
    return gzip.decompress(Path(path).read_bytes())


def test_uploads_use_the_default_versions_packed(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout)
    paths = binaries.uploads(spec, pins=pins, layout=layout)
    assert set(paths) == set(VERSIONS)
    for product, version in VERSIONS.items():
        binary = layout.bin_dir(product, version) / product
        assert paths[product] == str(layout.cache / "uploads" / f"{sha256_file(binary)}.gz")
        assert unpacked(paths[product]) == binary.read_bytes()
    release = dataclasses.replace(spec, install=dataclasses.replace(spec.install, source="release"))
    assert binaries.uploads(release, pins=pins, layout=layout) == {}


def test_pinning_only_an_extra_version_takes_its_installed_sha256(pins: Pins, layout: Layout) -> None:
    sha = install(layout, "nomad", OLD_NOMAD)
    spec = load(pins, layout, nomad={"version": OLD_NOMAD})
    assert (spec.install.nomad.version, spec.install.nomad.sha256) == (OLD_NOMAD, sha)
    assert spec.install.consul.version == VERSIONS["consul"]
    paths = binaries.uploads(spec, pins=pins, layout=layout)
    assert unpacked(paths["nomad"]) == (layout.bin_dir("nomad", OLD_NOMAD) / "nomad").read_bytes()
    assert unpacked(paths["consul"]) == (layout.bin_dir("consul", VERSIONS["consul"]) / "consul").read_bytes()


def test_a_binary_is_packed_once(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout)
    first = Path(binaries.uploads(spec, pins=pins, layout=layout)["consul"])
    made = first.stat().st_mtime_ns
    assert binaries.uploads(spec, pins=pins, layout=layout)["consul"] == str(first)
    assert first.stat().st_mtime_ns == made
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_release_source_takes_an_extra_versions_pinned_sha256(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout, "release", nomad={"version": OLD_NOMAD},
                consul={"sha256": "c" * 64}, cadvisor={"sha256": "d" * 64},
                **{"consul-template": {"sha256": "e" * 64}})
    assert spec.install.nomad.sha256 == RELEASE_SHA[OLD_NOMAD]
    assert spec.install.nomad.url == pins.tool("nomad").release.url


def test_an_extra_version_that_is_not_installed_names_the_ensure_command(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout, nomad={"version": OLD_NOMAD, "sha256": "f" * 64})
    with pytest.raises(cfg.ConfigError) as err:
        binaries.uploads(spec, pins=pins, layout=layout)
    assert err.value.key == "hashicluster:nomad"
    assert f"needs the toolchain's nomad {OLD_NOMAD}" in err.value.problem
    assert err.value.fix == f"python3 -m toolchain ensure nomad@{OLD_NOMAD}"


def test_a_default_version_that_is_not_installed_names_the_ensure_command(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout)
    (layout.tool_dir("consul", VERSIONS["consul"]) / "manifest.json").unlink()
    with pytest.raises(cfg.ConfigError) as err:
        binaries.uploads(spec, pins=pins, layout=layout)
    assert err.value.key == "hashicluster:consul"
    assert err.value.fix == "python3 -m toolchain ensure consul"


def test_a_version_the_toolchain_does_not_have_names_those_it_has(pins: Pins, layout: Layout) -> None:
    spec = load(pins, layout, nomad={"version": "1.6.1", "sha256": "f" * 64})
    with pytest.raises(cfg.ConfigError) as err:
        binaries.uploads(spec, pins=pins, layout=layout)
    assert err.value.key == "hashicluster:nomad.version"
    assert "the stack pins nomad 1.6.1, but the toolchain has nomad 1.6.3 (default), 1.6.2" in str(err.value)
    assert '[tools.nomad.versions."1.6.1"]' in err.value.fix


def test_a_different_sha256_of_the_pinned_version_is_refused(pins: Pins, layout: Layout) -> None:
    install(layout, "nomad", OLD_NOMAD)
    spec = load(pins, layout, nomad={"version": OLD_NOMAD, "sha256": "f" * 64})
    with pytest.raises(cfg.ConfigError) as err:
        binaries.uploads(spec, pins=pins, layout=layout)
    assert err.value.key == "hashicluster:nomad.sha256"
    assert f"the toolchain's nomad {OLD_NOMAD}" in err.value.problem and "f" * 64 in err.value.problem
