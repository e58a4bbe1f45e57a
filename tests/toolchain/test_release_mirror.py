"""The release path end to end, without Go, through a mirror on 127.0.0.1.

A release user has no Go: `python3 -m toolchain ensure --source release` must install every
tool from its vendor's artefact, verified by a pinned sha256 or the vendor's checksum list.
Vendor sites are out of reach here, so the test stands in for them with real parts:

- the artefacts are packed from the toolchain's own binaries (the default cache; built with
  `ensure --source build` first when missing) in the vendors' formats and URL layout
  (get.pulumi.com/releases/sdk/..., releases.hashicorp.com/PRODUCT/VERSION/..., github.com
  release assets), beside the checksum lists the vendors publish;
- a site's own pin file ($HASHICLUSTER_VERSIONS): a copy of versions.toml whose pinned sha256
  values are the packed archives' (the vendors' own would not match them); tools without a pin
  are verified through the checksum lists the mirror serves, as from the vendor;
- a static file server on an ephemeral port of 127.0.0.1, named by $HASHICLUSTER_RELEASE_MIRROR;
- `ensure` runs as a user would, with an empty cache and a PATH without `go`.

`./run setup --source release` runs this same command for the toolchain, then builds the lab's
base image, which is why the test runs the toolchain command itself.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolchain.ensure import ensure
from toolchain.manifest import read_manifest, sha256_file
from toolchain.paths import Layout
from toolchain.pins import PINS_FILE, Pins, ToolPin, load_pins
from toolchain.plugins import plugin_dir_name

pytestmark = pytest.mark.long

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600.0

PULUMI_YAML = """\
name: release-mirror
description: A throw-away program run by the release test's Pulumi CLI and command provider.
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
"""

PROGRAM = """\
import pulumi
from pulumi_command import local

hello = local.Command("hello", create='echo "hello from $(readlink /proc/$PPID/exe)"')
pulumi.export("stdout", hello.stdout)
"""


@dataclass(frozen=True)
class Artefact:
    """One packed release artefact."""

    vendor_url: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class Mirror:
    """The packed artefacts in the vendors' layout, the site's pin file, and where both are."""

    root: Path
    versions: Path
    artefacts: dict[str, Artefact]
    base: str = ""

    def url_of(self, vendor_url: str) -> str:
        """The mirror's URL for a vendor URL."""
        parts = urllib.parse.urlsplit(vendor_url)
        return f"{self.base}/{parts.netloc}{parts.path}"


# --- the toolchain's own binaries, packed as the vendors publish them ------------------------


def in_vendor_layout(root: Path, vendor_url: str) -> Path:
    """Where a mirror rooted at ``root`` keeps its copy of a vendor URL: ``root/HOST/PATH``."""
    parts = urllib.parse.urlsplit(vendor_url)
    return root / parts.netloc / parts.path.lstrip("/")


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (its exit status is for the caller to check)."""
    return subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, timeout=TIMEOUT,
                          check=False)


def built_toolchain() -> tuple[Layout, Pins]:
    """The project's default tools in the default cache, built from source if missing (a tool
    that cannot be built fails the test)."""
    layout, pins = Layout.from_env(), load_pins(PINS_FILE)
    outcomes = ensure(layout, pins, [], "build", stream=sys.stderr)
    failed = [f"{o.tool} {o.version}: {o.error}" for o in outcomes if o.action == "failed"]
    assert not failed, "the built toolchain the mirror is packed from is missing:\n" + "\n".join(failed)
    return layout, pins


def release_members(layout: Layout, pin: ToolPin) -> list[tuple[str, Path]]:
    """(path in the artefact, built file) for each release member the build provides."""
    bin_dir = layout.bin_dir(pin.name, pin.version)
    members = []
    for member in pin.release.members:
        built = bin_dir / member.name
        if built.is_file():
            members.append((pin.expand(member.path), built))
        else:
            assert member.optional, f"{pin.name}: the build has no {member.name}"
    return members


def pack(fmt: str, members: list[tuple[str, Path]], dest: Path) -> None:
    """Write a release artefact: a gzipped tar, a zip, or the one binary as it is."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "tar.gz":
        with tarfile.open(dest, "w:gz", compresslevel=1) as tf:
            for name, path in members:
                tf.add(path, arcname=name)
    elif fmt == "zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, path in members:
                zf.write(path, arcname=name)
    else:
        [(_, path)] = members
        shutil.copyfile(path, dest)


def publish_checksum_list(mirror_root: Path, pin: ToolPin, artefact: Artefact) -> None:
    """Add the artefact's line to the vendor's checksum list (with another platform's line)."""
    path = in_vendor_layout(mirror_root, pin.expand(pin.release.checksums_url))
    path.parent.mkdir(parents=True, exist_ok=True)
    name = artefact.vendor_url.rsplit("/", 1)[-1]
    other = name.replace("linux", "darwin")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{'0' * 64}  {other}\n{artefact.sha256}  {name}\n")


def site_versions(pins: Pins, artefacts: dict[str, Artefact], dest: Path) -> Path:
    """A copy of versions.toml whose pinned sha256 values are those of the packed artefacts."""
    text = PINS_FILE.read_text(encoding="utf-8")
    for name, pin in pins.tools.items():
        if pin.release.sha256_pinned:
            assert text.count(pin.release.sha256) == 1, f"{name}'s sha256 is not unique in versions.toml"
            text = text.replace(pin.release.sha256, artefacts[name].sha256)
    dest.write_text(text, encoding="utf-8")
    return dest


def pack_mirror(root: Path) -> Mirror:
    """Every default tool's release artefact and checksum list, in the vendors' URL layout."""
    layout, pins = built_toolchain()
    tree = root / "www"
    artefacts = {}
    for name, pin in pins.tools.items():
        vendor_url = pin.expand(pin.release.url)
        dest = in_vendor_layout(tree, vendor_url)
        pack(pin.release.format, release_members(layout, pin), dest)
        artefacts[name] = Artefact(vendor_url, dest, sha256_file(dest))
        if pin.release.checksums_url:
            publish_checksum_list(tree, pin, artefacts[name])
    return Mirror(tree, site_versions(pins, artefacts, root / "versions.toml"), artefacts)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, no request log."""

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logs."""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """The packed mirror, served on an ephemeral port of 127.0.0.1."""
    packed = pack_mirror(tmp_path_factory.mktemp("release-mirror"))
    handler = functools.partial(_QuietHandler, directory=str(packed.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(packed.root, packed.versions, packed.artefacts,
                     base=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


# --- a release user's environment --------------------------------------------------------------


def path_without_go() -> str:
    """The caller's PATH without any directory that holds `go`."""
    dirs = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not (Path(d) / "go").exists()]
    return os.pathsep.join(dirs)


def user_env(mirror: Mirror, cache: Path) -> dict[str, str]:
    """An empty cache, no `go`, the mirror and the site's pin file; nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HASHICLUSTER_", "PULUMI_"))}
    env.update(PATH=path_without_go(), HASHICLUSTER_CACHE=str(cache),
               HASHICLUSTER_RELEASE_MIRROR=mirror.base + "/", HASHICLUSTER_VERSIONS=str(mirror.versions))
    assert shutil.which("go", path=env["PATH"]) is None
    return env


def toolchain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python3 -m toolchain ARGS` from the repository."""
    return run([sys.executable, "-m", "toolchain", *args], env)


def with_toolchain_env(env: dict[str, str], *command: str, cwd: Path = ROOT) -> str:
    """Run a command after `eval "$(python3 -m toolchain env)"`, as a user's shell would; its
    stdout (the test fails on a non-zero exit)."""
    toolchain_env = f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m toolchain env"
    script = f'eval "$({toolchain_env})" && exec "$@"'
    proc = run(["bash", "-c", script, "bash", *command], env, cwd=cwd)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def installed_path(env: dict[str, str], tool: str) -> Path:
    """`python3 -m toolchain path TOOL`."""
    proc = toolchain(env, "path", tool)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


# --- the tests ------------------------------------------------------------------------------


def test_the_mirror_has_the_vendors_layout(mirror: Mirror) -> None:
    pins = load_pins(PINS_FILE)

    def v(tool: str) -> str:
        return pins.tool(tool).version

    expected = [
        f"get.pulumi.com/releases/sdk/pulumi-v{v('pulumi')}-linux-x64.tar.gz",
        f"github.com/pulumi/pulumi/releases/download/v{v('pulumi')}/pulumi-{v('pulumi')}-checksums.txt",
        f"github.com/pulumi/pulumi-command/releases/download/v{v('pulumi-resource-command')}/"
        f"pulumi-resource-command-v{v('pulumi-resource-command')}-linux-amd64.tar.gz",
        f"github.com/pulumi/pulumi-command/releases/download/v{v('pulumi-resource-command')}/"
        f"pulumi-command_{v('pulumi-resource-command')}_checksums.txt",
        f"releases.hashicorp.com/consul/{v('consul')}/consul_{v('consul')}_linux_amd64.zip",
        f"releases.hashicorp.com/consul/{v('consul')}/consul_{v('consul')}_SHA256SUMS",
        f"releases.hashicorp.com/nomad/{v('nomad')}/nomad_{v('nomad')}_linux_amd64.zip",
        f"releases.hashicorp.com/consul-template/{v('consul-template')}/"
        f"consul-template_{v('consul-template')}_linux_amd64.zip",
        f"github.com/google/cadvisor/releases/download/v{v('cadvisor')}/cadvisor-v{v('cadvisor')}-linux-amd64",
    ]
    missing = [path for path in expected if not (mirror.root / path).is_file()]
    assert missing == []
    with tarfile.open(mirror.root / expected[0]) as tf:
        assert {"pulumi/pulumi", "pulumi/pulumi-language-python"} <= set(tf.getnames())


def test_every_tool_installs_from_the_mirror_without_go(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = user_env(mirror, cache)
    proc = toolchain(env, "ensure", "--source", "release", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    pins = load_pins(mirror.versions)
    assert pins.tools, "the site's pin file names tools"
    assert f"toolchain: {len(pins.tools)} tools ready" in proc.stderr
    for name, pin in pins.tools.items():
        assert f"[{name} {pin.version}] downloaded in " in proc.stderr
        manifest = read_manifest(cache / "toolchain" / name / pin.version)
        assert manifest is not None and manifest.source == "release", name
        artefact = mirror.artefacts[name]
        assert manifest.details["url"] == artefact.vendor_url
        assert manifest.details["fetched_from"] == mirror.url_of(artefact.vendor_url)
        assert manifest.details["artefact_sha256"] == artefact.sha256
        if pin.release.sha256_pinned:
            assert manifest.details["sha256_source"].endswith(f" in {mirror.versions}")
        else:
            checksums = pin.expand(pin.release.checksums_url)
            assert manifest.details["sha256_source"] == \
                f"{checksums} (fetched from the mirror as {mirror.url_of(checksums)})"

    assert_binaries_run(env, pins)
    assert_command_plugin_where_pulumi_finds_it(env, cache, pins)
    assert_a_program_runs_with_them(env, cache, tmp_path / "project")


def assert_binaries_run(env: dict[str, str], pins: Pins) -> None:
    """Each tool's main binary runs and reports its pinned version."""
    version = {name: pin.version for name, pin in pins.tools.items()}
    checks = {
        "pulumi": (["version"], f"v{version['pulumi']}"),
        "consul": (["version"], f"Consul v{version['consul']}"),
        "nomad": (["version"], f"Nomad v{version['nomad']}"),
        "consul-template": (["-version"], f"v{version['consul-template']}"),
        "cadvisor": (["--version"], f"cAdvisor version v{version['cadvisor']}"),
    }
    for tool, (args, expected) in checks.items():
        proc = run([str(installed_path(env, tool)), *args], env)
        assert proc.returncode == 0 and expected in proc.stdout + proc.stderr, (tool, proc)
    assert with_toolchain_env(env, "pulumi", "version").strip() == f"v{version['pulumi']}"


def assert_command_plugin_where_pulumi_finds_it(env: dict[str, str], cache: Path, pins: Pins) -> None:
    """`pulumi plugin ls` lists the command provider from the Pulumi home's plugin cache, and the
    Python language host sits beside the CLI, where Pulumi runs its bundled hosts from."""
    pin = pins.tool("pulumi-resource-command")
    listed = json.loads(with_toolchain_env(env, "pulumi", "plugin", "ls", "--json"))
    assert {"name": "command", "kind": "resource", "version": pin.version} in [
        {key: plugin[key] for key in ("name", "kind", "version")} for plugin in listed
    ]
    dir_name = plugin_dir_name(pin.name, pin.version)
    assert dir_name == f"resource-command-v{pin.version}"
    plugins = cache / "pulumi-home" / "plugins"
    binary = plugins / dir_name / pin.main
    assert binary.resolve() == installed_path(env, pin.name).resolve()
    assert (plugins / f"{dir_name}.lock").is_file() and not (plugins / f"{dir_name}.partial").exists()
    pulumi = installed_path(env, "pulumi")
    assert (pulumi.parent / "pulumi-language-python").is_file()


def assert_a_program_runs_with_them(env: dict[str, str], cache: Path, project: Path) -> None:
    """`pulumi up` of a program with a local command: the language host runs it and the engine
    starts the command provider from the plugin cache (it is not on PATH)."""
    project.mkdir()
    (project / "Pulumi.yaml").write_text(PULUMI_YAML)
    (project / "__main__.py").write_text(PROGRAM)
    (project / "venv").symlink_to(ROOT / "venv")
    backend = project.parent / "backend"
    backend.mkdir()
    env = dict(env, PULUMI_BACKEND_URL=f"file://{backend}", PULUMI_CONFIG_PASSPHRASE="release-test")
    assert shutil.which("pulumi-resource-command", path=env["PATH"]) is None
    with_toolchain_env(env, "pulumi", "stack", "init", "test", "--non-interactive", cwd=project)
    with_toolchain_env(env, "pulumi", "up", "--yes", "--skip-preview", "--non-interactive", cwd=project)
    outputs = json.loads(with_toolchain_env(env, "pulumi", "stack", "output", "--json", cwd=project))
    provider = cache / "toolchain" / "pulumi-resource-command"
    assert outputs["stdout"].startswith(f"hello from {provider}/"), outputs
    with_toolchain_env(env, "pulumi", "destroy", "--yes", "--skip-preview", "--non-interactive", cwd=project)


@pytest.mark.parametrize("tool", ["nomad", "pulumi-resource-command"])
def test_a_tampered_archive_is_refused_and_nothing_of_it_installed(
    mirror: Mirror, tmp_path: Path, tool: str
) -> None:
    """nomad is checked against the site's pinned sha256, the command provider against the
    checksum list: one byte changed after either was recorded is refused."""
    artefact = mirror.artefacts[tool]
    original = artefact.path.read_bytes()
    middle = len(original) // 2
    tampered = original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1:]
    artefact.path.write_bytes(tampered)
    try:
        cache = tmp_path / "cache"
        proc = toolchain(user_env(mirror, cache), "ensure", "--source", "release", tool)
    finally:
        artefact.path.write_bytes(original)

    version = load_pins(mirror.versions).tool(tool).version
    assert proc.returncode == 1
    assert f"[{tool} {version}] FAILED" in proc.stderr
    assert (f"{tool} {version}: refusing {artefact.vendor_url} (fetched from the mirror as "
            f"{mirror.url_of(artefact.vendor_url)}): its sha256 is {hashlib.sha256(tampered).hexdigest()}, "
            f"expected {artefact.sha256}") in proc.stderr
    assert "toolchain: 1 of 1 tools failed" in proc.stderr
    root = cache / "toolchain"
    assert not (root / tool / version).exists()
    assert [p.name for p in (root / tool).iterdir()] == [".lock"]  # the install lock, nothing else
    assert list((root / ".tmp").iterdir()) == []
    assert list((root / "downloads").iterdir()) == []
    assert not (cache / "pulumi-home").exists()
