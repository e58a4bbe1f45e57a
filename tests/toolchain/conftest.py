"""Fixtures for the toolchain tests: a private cache dir, a 127.0.0.1 file server, a
release mirror served from it, and a stand-in go command."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.toolchain.test_licence import MPL
from toolchain.paths import Layout
from toolchain.pins import VERSIONS_ENV
from toolchain.release import MIRROR_ENV


@pytest.fixture(autouse=True)
def no_site_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without a site's mirror or pin file from the caller's environment."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(VERSIONS_ENV, raising=False)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    """A toolchain layout under a temporary cache root (also exported as the env var)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HASHICLUSTER_CACHE", str(cache))
    return Layout(cache / "toolchain")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that does not log to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logs."""


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Serve a temp dir on 127.0.0.1; yields (dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Mirror:
    """A release mirror: files in the vendors' layout (``HOST/PATH``) under ``root``, served
    at ``base``."""

    root: Path
    base: str

    def path_of(self, vendor_url: str) -> Path:
        """Where the mirror keeps its copy of a vendor URL."""
        parts = urllib.parse.urlsplit(vendor_url)
        return self.root / parts.netloc / parts.path.lstrip("/")

    def publish(self, vendor_url: str, data: bytes) -> str:
        """Serve ``data`` as the mirror's copy of ``vendor_url``; return the vendor URL."""
        path = self.path_of(vendor_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return vendor_url


@pytest.fixture
def mirror(http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Mirror:
    """A mirror on 127.0.0.1, set as $HASHICLUSTER_RELEASE_MIRROR."""
    root, base = http_root
    monkeypatch.setenv(MIRROR_ENV, base + "/mirror")
    return Mirror(root / "mirror", base + "/mirror")


FAKE_GO = Path(__file__).with_name("fake_go.py")


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake `go` (fake_go.py) first on PATH; returns its state dir (modules/, calls.log)."""
    root = tmp_path / "fakego"
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    (bindir / "go").symlink_to(FAKE_GO)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_GO_ROOT", str(root))
    add_module(root, "example.com/fake@v1.0.0", MPL, "module example.com/fake\n")
    return root


def add_module(root: Path, module_at: str, licence: str, go_mod: str) -> Path:
    """Create a module dir the fake go will report for ``module_at``."""
    mod = root / "modules" / module_at
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "LICENSE").write_text(licence, encoding="utf-8")
    (mod / "go.mod").write_text(go_mod, encoding="utf-8")
    return mod


def calls(root: Path) -> list[str]:
    """The go sub-commands the fake saw."""
    log = root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []
