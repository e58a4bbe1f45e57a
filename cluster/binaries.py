"""Which Consul and Nomad binaries a stack installs, by default and for upload.

Defaults come from toolchain/versions.toml: the pinned version, and the sha256 of the
vendor's zip (`release` source) or of the toolchain's own binary (`upload` source).
"""

from __future__ import annotations

from collections.abc import Mapping

from cluster.config import PRODUCT_KEYS, BinaryPin, ClusterSpec, ConfigError, InstallSource
from toolchain.api import installed
from toolchain.errors import ToolchainError
from toolchain.pins import load_pins

PRODUCTS = tuple(PRODUCT_KEYS)


def defaults(source: InstallSource) -> Mapping[str, BinaryPin]:
    pins = load_pins()
    result = {}
    for product in PRODUCTS:
        pin = pins.tool(product)
        url, archive = pin.release.url, "zip" if pin.release.format == "zip" else "binary"
        if source == "release":
            sha = pin.release.sha256 if pin.release.sha256_pinned else ""
        else:
            try:
                sha = installed(product).sha256
            except ToolchainError:
                sha = ""
        result[product] = BinaryPin(product, pin.version, sha, url, archive)
    return result


def uploads(spec: ClusterSpec) -> dict[str, str]:
    """For the `upload` source: product -> path of the controller's binary, checked against
    the stack's pin before anything is created."""
    if spec.install.source != "upload":
        return {}
    paths = {}
    for product in PRODUCTS:
        pin = spec.install.pin(product)
        try:
            binary = installed(product)
        except ToolchainError as err:
            raise ConfigError(pin.config_key, f"the upload source needs the toolchain's {product}: {err}",
                              f"python3 -m toolchain ensure {product}") from None
        if binary.version != pin.version:
            raise ConfigError(f"{pin.config_key}.version",
                              f"the stack pins {product} {pin.version}, but the toolchain has "
                              f"{binary.version} to upload",
                              f"pin {binary.version}, or provide {pin.version} in toolchain/versions.toml")
        if binary.sha256 != pin.sha256:
            raise ConfigError(f"{pin.config_key}.sha256",
                              f"the stack pins {pin.sha256 or '(nothing)'}, but the toolchain's {product} "
                              f"{binary.version} ({binary.path}) has sha256 {binary.sha256}",
                              "pin the binary you mean to install, or rebuild the toolchain")
        paths[product] = str(binary.path)
    return paths
