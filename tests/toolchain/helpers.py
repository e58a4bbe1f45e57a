"""Helpers shared by the toolchain tests: small pin files and made-up artefacts."""

from __future__ import annotations

import copy
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from toolchain.pins import Pins, parse_pins

FAKE_BINARY = b"#!/bin/sh\necho fake-tool 1.0.0\n"


def tool_table(**overrides: Any) -> dict[str, Any]:
    """A valid ``[tools.X]`` table for a made-up tool ``fake`` (override any key)."""
    table: dict[str, Any] = {
        "version": "1.0.0",
        "licences": ["MPL-2.0"],
        "main": "fake",
        "env": "HASHICLUSTER_BIN_FAKE",
        "on_path": False,
        "release": {
            "url": "http://127.0.0.1:1/fake_{version}.tar.gz",
            "sha256": "TODO",
            "format": "tar.gz",
            "members": [{"path": "fake", "name": "fake"}],
        },
        "build": {
            "go": "1.21",
            "require": ["example.com/fake@v1.0.0"],
            "binaries": [
                {
                    "name": "fake",
                    "package": "example.com/fake/cmd/fake",
                    "ldflags": ["-X example.com/fake/version.Version={version}"],
                }
            ],
        },
    }
    for key, value in overrides.items():
        table[key] = value
    return table


def pins_data(**tools: dict[str, Any]) -> dict[str, Any]:
    """A whole pin file as parsed TOML data."""
    return {
        "settings": {
            "goproxy": "https://proxy.example.invalid",
            "forbidden_modules": ["example.com/forbidden"],
        },
        "tools": tools or {"fake": tool_table()},
    }


def make_pins(**tools: dict[str, Any]) -> Pins:
    """Parsed pins for the given tool tables (default: one ``fake`` tool)."""
    return parse_pins(copy.deepcopy(pins_data(**tools)))


def with_release(table: dict[str, Any], **release: Any) -> dict[str, Any]:
    """A copy of a tool table with release keys replaced."""
    result = copy.deepcopy(table)
    result["release"].update(release)
    return result


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzipped tar holding the given files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive holding the given files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    """Write bytes, creating parent dirs; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
