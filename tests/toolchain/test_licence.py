"""Licence recognition and refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.errors import LicenceError
from toolchain.licence import check_module_licence, classify_licence

MPL = "Copyright (c) 2015 HashiCorp, Inc.\n\nMozilla Public License, version 2.0\n\n1. Definitions"
APACHE = "\n" + " " * 33 + "Apache License\n" + " " * 27 + "Version 2.0, January 2004\n"
APACHE_HEADER = 'Licensed under the Apache License, Version 2.0 (the "License");'
BUSL = (
    "License text copyright (c) 2020 MariaDB Corporation Ab, All Rights Reserved.\n"
    '"Business Source License" is a trademark of MariaDB Corporation Ab.\n\n'
    "Parameters\n\nLicensor: HashiCorp, Inc.\nLicensed Work: Nomad Version 1.7.0 or later.\n"
    "Change License: Mozilla Public License, version 2.0\n\nBusiness Source License 1.1\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MPL, "MPL-2.0"),
        ("Mozilla Public License Version 2.0\n==================", "MPL-2.0"),
        (APACHE, "Apache-2.0"),
        (APACHE_HEADER, "Apache-2.0"),
        (BUSL, "BUSL-1.1"),
        ("MIT License\n\nPermission is hereby granted", None),
    ],
)
def test_classify(text: str, expected: str | None) -> None:
    assert classify_licence(text) == expected


def _module(tmp_path: Path, text: str | None, name: str = "LICENSE") -> Path:
    mod = tmp_path / "mod"
    mod.mkdir()
    if text is not None:
        (mod / name).write_text(text, encoding="utf-8")
    return mod


def test_allowed_licence_passes(tmp_path: Path) -> None:
    mod = _module(tmp_path, MPL)
    assert check_module_licence("example.com/m@v1", mod, ["MPL-2.0"]) == "MPL-2.0"


def test_licence_txt_is_found(tmp_path: Path) -> None:
    mod = _module(tmp_path, APACHE, name="LICENSE.txt")
    assert check_module_licence("example.com/m@v1", mod, ["Apache-2.0"]) == "Apache-2.0"


def test_busl_is_refused_even_though_it_names_mpl(tmp_path: Path) -> None:
    mod = _module(tmp_path, BUSL)
    with pytest.raises(LicenceError, match=r"nomad@v1\.7\.0: its LICENSE is BUSL-1\.1"):
        check_module_licence("github.com/hashicorp/nomad@v1.7.0", mod, ["MPL-2.0"])


def test_other_allowed_licence_is_refused(tmp_path: Path) -> None:
    mod = _module(tmp_path, APACHE)
    with pytest.raises(LicenceError, match=r"is Apache-2\.0, not MPL-2\.0"):
        check_module_licence("example.com/m@v1", mod, ["MPL-2.0"])


def test_missing_and_unknown_licences_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LicenceError, match="no LICENSE file"):
        check_module_licence("example.com/m@v1", _module(tmp_path, None), ["MPL-2.0"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "LICENSE").write_text("All rights reserved.", encoding="utf-8")
    with pytest.raises(LicenceError, match="not a licence this toolchain recognises"):
        check_module_licence("example.com/m@v1", other, ["MPL-2.0"])
