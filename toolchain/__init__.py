"""Provide the Pulumi CLI, its plugins and the cluster's binaries, cached by version.

Run ``python3 -m toolchain --help``. Other code asks for installed binaries through
:mod:`toolchain.api`.
"""

__all__: list[str] = []
