"""Which Consul and Nomad binaries a stack installs, by default and for upload.

Defaults come from toolchain/versions.toml: the pinned version, and the sha256 of the
vendor's zip (`release` source) or of the toolchain's own binary (`upload` source).
Besides each product's default version, the toolchain may provide extra versions
([tools.NAME.versions."VERSION"], `python3 -m toolchain ensure nomad@1.6.2`); a stack that
pins one of them gets that version's sha256 the same way, and uploads its binary.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cluster.config import (
    ARCHITECTURES,
    PRODUCT_KEYS,
    ArchPin,
    BinaryPin,
    ClusterSpec,
    ConfigError,
    InstallSource,
)
from toolchain.api import InstalledBinary, installed
from toolchain.errors import ToolchainError
from toolchain.paths import Layout
from toolchain.pins import Pins, ToolPin, load_pins

PRODUCTS = tuple(PRODUCT_KEYS)
PACK_LEVEL = 1  # gzip's fastest: 108 MiB of Consul in 2.5 s to 33 MiB (level 6: 7 s, 29 MiB)


def defaults(source: InstallSource, pins: Pins | None = None,
             layout: Layout | None = None) -> Mapping[str, BinaryPin]:
    """The toolchain's pins as cluster/config.py takes them (see `PinDefaults` there).

    Keyed by product for the default versions, and by `product@version` (e.g. "nomad@1.6.2")
    for the extra versions, so that a stack pinning only an extra version's `version` still
    gets its sha256. With `upload`, a version that is not installed has no sha256 ("").
    """
    pins = pins or load_pins()
    result = {}
    for product in PRODUCTS:
        for version in pins.versions(product):
            pin = pins.tool(product, version)
            key = product if pin.is_default else f"{product}@{version}"
            result[key] = _binary_pin(pin, source, pins, layout)
    return result


def _binary_pin(pin: ToolPin, source: InstallSource, pins: Pins,
                layout: Layout | None) -> BinaryPin:
    """One version's BinaryPin: the release's pinned sha256, or the installed binary's, for
    amd64 and for every other architecture the toolchain pins."""
    def artefact(arch: str) -> ArchPin | None:
        try:
            release = pin.release_for(arch)
        except ToolchainError:
            return None  # not pinned for ARCH, or its release cannot be installed
        archive = "zip" if release.format == "zip" else "binary"
        if source == "release":
            return ArchPin(release.sha256 if release.sha256_pinned else "", release.url, archive)
        try:
            return ArchPin(installed(pin.name, pin.version, pins=pins, layout=layout, arch=arch).sha256,
                           release.url, archive)
        except ToolchainError:
            return ArchPin("", release.url, archive)

    main = artefact(ARCHITECTURES[0])
    assert main is not None, f"{pin.name} has no {ARCHITECTURES[0]} release pin"
    others = {arch: found for arch in ARCHITECTURES[1:] if (found := artefact(arch)) is not None}
    return BinaryPin(pin.name, pin.version, main.sha256, main.url, main.archive, ARCHITECTURES[0], others)


def upload_key(product: str, arch: str) -> str:
    """The key of a binary in uploads(): the product for amd64, `product/ARCH` for another."""
    return product if arch == ARCHITECTURES[0] else f"{product}/{arch}"


def uploads(spec: ClusterSpec, arches: Sequence[str] = ARCHITECTURES[:1], pins: Pins | None = None,
            layout: Layout | None = None) -> dict[str, str]:
    """For the `upload` source: upload_key(product, arch) -> path of the gzip-packed copy
    (packed()) of the controller's binary of the version the stack pins (default or extra) for
    each of ARCHES (the machines'), checked against the stack's pin before anything is created."""
    if spec.install.source != "upload":
        return {}
    pins = pins or load_pins()
    layout = layout or Layout.from_env()
    binaries = {upload_key(product, arch): _upload_binary(spec.install.pin(product).for_arch(arch), pins,
                                                          layout)
                for product in PRODUCTS for arch in arches}
    with ThreadPoolExecutor() as pool:  # zlib lets go of the GIL: the first packing runs at once
        packs = dict(zip(binaries, pool.map(lambda b: packed(b, layout), binaries.values()), strict=True))
    return {key: str(path) for key, path in packs.items()}


def packed(binary: InstalledBinary, layout: Layout) -> Path:
    """BINARY packed with gzip for its upload, made once and kept in the cache by its sha256
    (`<cache>/uploads/`): about a third of the bytes to send, and gzip to unpack them is on every
    Debian machine (the install step checks the unpacked binary's sha256)."""
    out = layout.cache / "uploads" / f"{binary.sha256}.gz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}")
        with binary.path.open("rb") as src, gzip.GzipFile(tmp, "wb", PACK_LEVEL, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(out)
    return out


def _upload_binary(pin: BinaryPin, pins: Pins, layout: Layout | None) -> InstalledBinary:
    """The toolchain's binary for one product pin; ConfigError naming the fix if there is none
    of that version, it is not installed, or its sha256 is not the pinned one."""
    product = pin.product
    if pin.version not in pins.versions(product):
        raise ConfigError(f"{pin.config_key}.version",
                          f"the stack pins {product} {pin.version}, but the toolchain has "
                          f"{pins.describe_versions(product)} to upload",
                          f"pin one of those, or declare {pin.version} under "
                          f'[tools.{product}.versions."{pin.version}"] in toolchain/versions.toml')
    tool = pins.tool(product, pin.version)
    try:
        binary = installed(product, pin.version, pins=pins, layout=layout, arch=pin.arch)
    except ToolchainError as err:
        raise ConfigError(pin.config_key,
                          f"the upload source needs the toolchain's {product} {pin.version}: {err}",
                          f"python3 -m toolchain ensure {tool.spec}"
                          + (f" --arch {pin.arch}" if pin.arch != ARCHITECTURES[0] else "")) from None
    if binary.sha256 != pin.sha256:
        raise ConfigError(f"{pin.config_key}.sha256",
                          f"the stack pins {pin.sha256 or '(nothing)'}, but the toolchain's {product} "
                          f"{binary.version} ({binary.path}) has sha256 {binary.sha256}",
                          "pin the binary you mean to install, or rebuild the toolchain")
    return binary
