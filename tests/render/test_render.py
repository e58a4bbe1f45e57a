"""Every template rendered for every role, checked by the real Consul and Nomad, and compared
with the golden files in tests/render/golden/ (the review copy of what machines receive).

Regenerate the golden files after a deliberate template change:
    HASHICLUSTER_UPDATE_GOLDEN=1 ./venv/bin/python -m pytest tests/render
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cluster import config as cfg
from cluster import render
from cluster.topology import Node, Role, nodes
from toolchain.api import installed
from toolchain.errors import ToolchainError

GOLDEN = Path(__file__).resolve().parent / "golden"
PINS = {product: cfg.BinaryPin(product, "1.0.0", "c" * 64) for product in cfg.PRODUCT_KEYS}


def raw_config(servers: int, settings: str | None = None, security: str | None = None,
               two_tier: bool = False) -> dict[str, str]:
    """A stack's config, as `pulumi config` would give it."""
    raw = {"servers": str(servers), "clients": "3", "install": '{"source": "upload"}',
           "machines": '{"provider": "nspawn", "network": "10.210.1.0/24"}'}
    if settings:
        raw["clientSettings"] = settings
    if security:
        raw["security"] = security
    if two_tier:
        raw["loadBalancing"] = "two-tier"
    return raw


def pins(source: cfg.InstallSource) -> dict[str, cfg.BinaryPin]:
    return PINS


RAW_LAYOUTS = {
    "single": raw_config(1, '{"client2": {"nodeClass": "batch", "meta": {"rack": "r2"}}}'),
    "ha": raw_config(3),
    # The plain demo: no gossip key, no TLS.
    "plain": raw_config(1, security='{"gossip": false, "tls": false}'),
    # No security at all: no ACL steps, the secret files of an earlier setup removed.
    "open": raw_config(1, security='{"gossip": false, "tls": false, "acl": false}'),
    "two-tier": raw_config(1, two_tier=True),
    # The machines download the vendors' zips themselves (every other layout uploads).
    "release": {**raw_config(1), "install": '{"source": "release"}'},
}
LAYOUTS = {name: cfg.load(raw, "render", pins) for name, raw in RAW_LAYOUTS.items()}
CASES = [(layout, node) for layout, s in LAYOUTS.items() for node in nodes(s)]


def files_for(s: cfg.ClusterSpec, node: Node) -> list[render.File]:
    servers = [n for n in nodes(s) if n.role is Role.SERVER]
    files = render.consul_files(s, node, servers)
    if node.role is not Role.LB:
        files += render.nomad_files(s, node, servers)
    if node.role is Role.CLIENT:
        files += render.cadvisor_files(s, node)
        if s.load_balancing == "two-tier":
            nginx, consul_template = render.backend_files(s, node)
            files += nginx + consul_template
    if node.role is Role.LB:
        nginx, consul_template = render.loadbalancer_files(s, node, servers)
        files += nginx + consul_template
    return files


def binary(tool: str) -> str:
    try:
        return str(installed(tool).path)
    except ToolchainError as err:
        pytest.fail(f"{err} (the render tests validate with the real binaries; `./run test` builds them)")


def write_tree(root: Path, files: list[render.File]) -> None:
    for f in files:
        path = root / f.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)


@pytest.mark.parametrize(("layout", "node"), CASES, ids=[f"{lay}-{n.name}" for lay, n in CASES])
def test_consul_accepts_the_config(layout: str, node: Node, tmp_path: Path) -> None:
    write_tree(tmp_path, files_for(LAYOUTS[layout], node))
    proc = subprocess.run([binary("consul"), "validate", str(tmp_path / "etc/consul.d")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Configuration is valid!" in proc.stdout


@pytest.mark.parametrize(("layout", "node"), [c for c in CASES if c[1].role is not Role.LB],
                         ids=[f"{lay}-{n.name}" for lay, n in CASES if n.role is not Role.LB])
def test_nomad_accepts_the_config(layout: str, node: Node, tmp_path: Path) -> None:
    write_tree(tmp_path, files_for(LAYOUTS[layout], node))
    proc = subprocess.run([binary("nomad"), "config", "validate", str(tmp_path / "etc/nomad.d")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_config_is_refused(tmp_path: Path) -> None:
    """The validators do catch mistakes (so the tests above could fail)."""
    (tmp_path / "bad.hcl").write_text('server = "yes please"\nbootstrap_expect = -1\n')
    proc = subprocess.run([binary("consul"), "validate", str(tmp_path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0


@pytest.mark.parametrize(("layout", "node"), CASES, ids=[f"{lay}-{n.name}" for lay, n in CASES])
def test_matches_golden_files(layout: str, node: Node) -> None:
    root = GOLDEN / layout / node.name
    files = files_for(LAYOUTS[layout], node)
    assert files, f"{layout}: nothing rendered for {node.name}"
    if os.environ.get("HASHICLUSTER_UPDATE_GOLDEN"):
        write_tree(root, files)
    for f in files:
        golden = root / f.path.lstrip("/")
        assert golden.exists(), f"no golden file {golden}: run with HASHICLUSTER_UPDATE_GOLDEN=1"
        assert f.content == golden.read_text(), f"{golden} differs from the rendered file"
    # steps/: the scripts' golden files (test_scripts.py).
    expected = {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and p.relative_to(root).parts[0] != "steps"}
    assert expected == {f.path.lstrip("/") for f in files}
