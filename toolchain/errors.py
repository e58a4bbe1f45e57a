"""Exceptions raised by the toolchain package."""


class ToolchainError(Exception):
    """A problem the user can act on; the message names the problem and the fix."""


class PinError(ToolchainError):
    """versions.toml is missing, malformed or names an unknown tool."""


class LicenceError(ToolchainError):
    """A module's LICENSE is not one of the licences the tool may be built from."""


class ForbiddenModuleError(ToolchainError):
    """A build would download or link a module that must never be used."""


class ChecksumError(ToolchainError):
    """A downloaded artefact does not match its pinned sha256 (or none is pinned)."""


class BuildError(ToolchainError):
    """A go command failed; the message names the tool, the version and the log file."""


class UnavailableError(ToolchainError):
    """The requested source cannot provide this tool (the pin says why)."""
