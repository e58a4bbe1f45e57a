"""Fixtures for the toolchain tests: a private cache dir, a 127.0.0.1 file server and a
release mirror served from it."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
