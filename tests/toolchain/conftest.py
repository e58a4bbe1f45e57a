"""Fixtures for the toolchain tests: a private cache dir and a 127.0.0.1 file server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.paths import Layout


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
