"""Refuse to build from modules whose LICENSE is not an allowed open-source licence."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from toolchain.errors import LicenceError

LICENCE_FILE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING")

# Checked in order: a Business Source License text mentions its "Change License" (often
# MPL 2.0), so it must be recognised before the open-source markers are looked for.
_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("BUSL-1.1", re.compile(r"business\s+source\s+license", re.I)),
    ("MPL-2.0", re.compile(r"mozilla\s+public\s+license,?\s+(version\s+|v)?2\.0", re.I)),
    ("Apache-2.0", re.compile(r"apache\s+license,?\s+version\s+2\.0", re.I)),
)


def classify_licence(text: str) -> str | None:
    """Return the SPDX id a LICENSE text is recognised as, or None."""
    for spdx, pattern in _MARKERS:
        if pattern.search(text):
            return spdx
    return None


def find_licence_file(module_dir: Path) -> Path | None:
    """Return the licence file at the top of a module dir, if there is one."""
    for name in LICENCE_FILE_NAMES:
        path = module_dir / name
        if path.is_file():
            return path
    return None


def check_module_licence(module: str, module_dir: Path, allowed: Iterable[str]) -> str:
    """Return the module's licence id, or raise LicenceError if it is not allowed.

    ``module`` is only used in messages (e.g. ``github.com/hashicorp/nomad@v1.6.3``).
    """
    allowed_set = sorted(set(allowed))
    path = find_licence_file(module_dir)
    if path is None:
        raise LicenceError(
            f"refusing to build {module}: no LICENSE file in {module_dir}; "
            f"only {', '.join(allowed_set)} modules may be built"
        )
    spdx = classify_licence(path.read_text(encoding="utf-8", errors="replace"))
    if spdx is None:
        raise LicenceError(
            f"refusing to build {module}: {path} is not a licence this toolchain recognises; "
            f"only {', '.join(allowed_set)} modules may be built"
        )
    if spdx not in allowed_set:
        raise LicenceError(
            f"refusing to build {module}: its LICENSE is {spdx}, not {' or '.join(allowed_set)}; "
            "pin an open-source version in toolchain/versions.toml"
        )
    return spdx
