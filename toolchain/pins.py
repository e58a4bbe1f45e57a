"""Load and validate the pinned tool versions from ``versions.toml``."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import PinError, UnavailableError

PINS_FILE = Path(__file__).with_name("versions.toml")
#: A site's own pin file instead of the project's (its versions, sha256 values, URLs).
VERSIONS_ENV = "HASHICLUSTER_VERSIONS"

#: Value of ``release.sha256`` meaning "not looked up yet".
SHA256_PLACEHOLDER = "TODO"

#: The Linux architectures a tool can be pinned for. The first is every tool's: the keys of its
#: ``[tools.NAME.release]`` table. The others are sub-tables of it (``[tools.NAME.release.arm64]``),
#: which only the tools the machines run have; the controller's tools are amd64 only.
ARCHITECTURES = ("amd64", "arm64")
DEFAULT_ARCH = ARCHITECTURES[0]


def linux_platform(arch: str) -> str:
    """``linux_arm64``: the vendors' name for an architecture (and the cache dir of its builds)."""
    return f"linux_{arch}"


KNOWN_LICENCES = frozenset({"Apache-2.0", "MPL-2.0"})
RELEASE_FORMATS = frozenset({"zip", "tar.gz", "binary"})

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MODULE_AT_RE = re.compile(r"^[^\s@]+@v[^\s@]+$")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")

#: Keys of ``[tools.NAME]`` that every version shares: an extra version may not change them.
SHARED_KEYS = ("version", "main", "env", "on_path", "versions")


@dataclass(frozen=True)
class ReleaseMember:
    """One file taken from a release artefact, installed as ``bin/<name>``."""

    path: str
    name: str
    optional: bool = False


@dataclass(frozen=True)
class ReleaseRecipe:
    """Where the official artefact of one architecture lives and what it must hash to."""

    url: str
    sha256: str
    format: str
    members: tuple[ReleaseMember, ...]
    # The vendor's published checksum list for the release (`HASH  FILENAME` lines): used
    # where no sha256 could be pinned in advance.
    checksums_url: str = ""

    @property
    def sha256_pinned(self) -> bool:
        """True when a real checksum (not the placeholder) is pinned."""
        return bool(_SHA256_RE.match(self.sha256))


@dataclass(frozen=True)
class GoBinary:
    """A Go main package built into ``bin/<name>``."""

    name: str
    package: str
    ldflags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleFile:
    """A file copied out of a downloaded module into ``bin/<name>`` (e.g. a script)."""

    name: str
    module: str
    path: str
    optional: bool = False


@dataclass(frozen=True)
class BuildRecipe:
    """How to build a tool from source through the Go module proxy."""

    go: str
    require: tuple[str, ...]
    replace: tuple[str, ...]
    binaries: tuple[GoBinary, ...]
    files: tuple[ModuleFile, ...] = ()
    tags: tuple[str, ...] = ()
    cgo: bool = False
    commit: str = ""
    licence_check: tuple[str, ...] = ()
    unavailable: str = ""

    @property
    def modules_to_check(self) -> tuple[str, ...]:
        """``module@version`` strings whose LICENSE is checked before building."""
        return self.require + tuple(m for m in self.licence_check if m not in self.require)


@dataclass(frozen=True)
class ToolPin:
    """Everything pinned for one tool."""

    name: str
    version: str
    licences: tuple[str, ...]
    main: str
    env: str
    on_path: bool
    release: ReleaseRecipe
    build: BuildRecipe
    # False for an extra version declared under [tools.NAME.versions."VERSION"].
    is_default: bool = True
    # The releases of the other architectures ([tools.NAME.release.ARCH]), and the reason of
    # each architecture whose table says `unavailable` instead.
    arch_releases: Mapping[str, ReleaseRecipe] = field(default_factory=dict)
    arch_unavailable: Mapping[str, str] = field(default_factory=dict)
    # The architecture this pin installs: where it is cached, which artefact, what go builds.
    arch: str = DEFAULT_ARCH

    @property
    def spec(self) -> str:
        """How commands name this version: ``NAME`` (default) or ``NAME@VERSION`` (extra)."""
        return self.name if self.is_default else f"{self.name}@{self.version}"

    @property
    def platform(self) -> str:
        """``linux_amd64`` or ``linux_arm64``: the vendors' name for this pin's architecture."""
        return linux_platform(self.arch)

    @property
    def ensure_command(self) -> str:
        """The command that installs this version for this architecture."""
        arch = f" --arch {self.arch}" if self.arch != DEFAULT_ARCH else ""
        return f"python3 -m toolchain ensure {self.spec}{arch}"

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures the tool is pinned for: amd64, and each with a release.ARCH table."""
        others = {*self.arch_releases, *self.arch_unavailable}
        return tuple(arch for arch in ARCHITECTURES if arch == DEFAULT_ARCH or arch in others)

    def check_arch(self, arch: str) -> None:
        """Raise PinError unless the tool is pinned for ``arch``."""
        if arch not in ARCHITECTURES:
            raise PinError(f"unknown architecture {arch!r}: the toolchain knows {', '.join(ARCHITECTURES)}")
        if arch not in self.architectures:
            raise PinError(
                f"{self.name} is pinned for linux_{DEFAULT_ARCH} only: the pin file has no "
                f"[tools.{self.name}.release.{arch}] table (the controller's tools, such as the "
                f"Pulumi CLI and its plugins, run on linux_{DEFAULT_ARCH} only)"
            )

    def release_for(self, arch: str) -> ReleaseRecipe:
        """The official release of one architecture (same fields as :attr:`release`, the amd64 one).

        Raises PinError when the tool is not pinned for ``arch``, UnavailableError when the
        pin says that architecture's release cannot be installed (and why).
        """
        self.check_arch(arch)
        if arch == DEFAULT_ARCH:
            return self.release
        if arch in self.arch_unavailable:
            raise UnavailableError(
                f"{self.name} {self.version}: no official linux_{arch} release can be installed: "
                f"{self.arch_unavailable[arch]}; use --source build"
            )
        return self.arch_releases[arch]

    def for_arch(self, arch: str) -> ToolPin:
        """This version for another architecture (PinError when the tool is not pinned for it)."""
        self.check_arch(arch)
        return dataclasses.replace(self, arch=arch)

    def expand(self, template: str, date: str = "") -> str:
        """Fill ``{version}``, ``{commit}`` and ``{date}`` into a template string."""
        return (
            template.replace("{version}", self.version)
            .replace("{commit}", self.build.commit)
            .replace("{date}", date)
        )

    @property
    def binary_names(self) -> tuple[str, ...]:
        """Names of the files a build installs (required ones first)."""
        names = [b.name for b in self.build.binaries]
        names += [f.name for f in self.build.files]
        return tuple(names)


@dataclass(frozen=True)
class Settings:
    """Settings shared by every tool."""

    goproxy: str
    forbidden_modules: tuple[str, ...]


@dataclass(frozen=True)
class Pins:
    """The whole pin file."""

    settings: Settings
    # The default version of each tool.
    tools: Mapping[str, ToolPin]
    # Extra versions: tool -> version -> pin, in file order.
    extras: Mapping[str, Mapping[str, ToolPin]] = field(default_factory=dict)

    def tool(self, name: str, version: str | None = None) -> ToolPin:
        """One tool's pin: its default version, or the named one.

        Raises PinError listing the known tools, or the versions the tool has.
        """
        try:
            default = self.tools[name]
        except KeyError:
            known = ", ".join(sorted(self.tools))
            raise PinError(f"unknown tool {name!r}: versions.toml pins {known}") from None
        if version is None or version == default.version:
            return default
        extra = self.extras.get(name, {}).get(version)
        if extra is None:
            raise PinError(
                f"{name} {version} is not pinned: versions.toml has "
                f"{self.describe_versions(name)}; "
                f'declare it under [tools.{name}.versions."{version}"] in toolchain/versions.toml'
            )
        return extra

    def versions(self, name: str) -> tuple[str, ...]:
        """Every pinned version of a tool, the default first."""
        return (self.tool(name).version, *self.extras.get(name, {}))

    def describe_versions(self, name: str) -> str:
        """``nomad 1.6.3 (default), 1.6.2`` for messages."""
        default, *others = self.versions(name)
        return f"{name} " + ", ".join([f"{default} (default)", *others])

    def all_pins(self) -> list[ToolPin]:
        """Every version of every tool: each tool's default, then its extra versions."""
        result = []
        for name, pin in self.tools.items():
            result.append(pin)
            result.extend(self.extras.get(name, {}).values())
        return result

    def select(self, spec: str) -> ToolPin:
        """The pin a command-line ``TOOL`` or ``TOOL@VERSION`` names."""
        name, version = parse_tool_spec(spec)
        return self.tool(name, version)


def parse_tool_spec(spec: str) -> tuple[str, str | None]:
    """Split ``TOOL`` or ``TOOL@VERSION`` into (tool, version or None)."""
    name, at, version = spec.strip().partition("@")
    if not name or (at and not version) or "@" in version or any(c.isspace() for c in spec.strip()):
        raise PinError(f"{spec!r} is not TOOL or TOOL@VERSION (e.g. nomad or nomad@1.6.2)")
    return name, (version if at else None)


def _get(table: Mapping[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    """Read ``table[key]`` checking its type; a missing key without default is an error."""
    if key not in table:
        if default is not None:
            return default
        raise PinError(f"{where}: missing key {key!r} in versions.toml")
    value = table[key]
    if not isinstance(value, kind):
        raise PinError(
            f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__} in versions.toml"
        )
    return value


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """Read an optional list of strings."""
    values = _get(table, key, list, where, default=[])
    if not all(isinstance(v, str) for v in values):
        raise PinError(f"{where}.{key}: every entry must be a string in versions.toml")
    return tuple(values)


def _parse_release(table: Mapping[str, Any], where: str) -> ReleaseRecipe:
    """Parse a ``[tools.X.release]`` table."""
    fmt = _get(table, "format", str, where)
    if fmt not in RELEASE_FORMATS:
        raise PinError(f"{where}.format: {fmt!r} is not one of {sorted(RELEASE_FORMATS)}")
    sha = _get(table, "sha256", str, where).strip().lower()
    if sha != SHA256_PLACEHOLDER.lower() and not _SHA256_RE.match(sha):
        raise PinError(
            f"{where}.sha256: {sha!r} is neither 64 hex digits nor the placeholder {SHA256_PLACEHOLDER!r}"
        )
    members = []
    for i, raw in enumerate(_get(table, "members", list, where)):
        mwhere = f"{where}.members[{i}]"
        _require_table(raw, mwhere)
        members.append(
            ReleaseMember(
                path=_get(raw, "path", str, mwhere),
                name=_checked_name(_get(raw, "name", str, mwhere), mwhere),
                optional=_get(raw, "optional", bool, mwhere, default=False),
            )
        )
    if not members:
        raise PinError(f"{where}.members: at least one member is needed")
    if fmt == "binary" and len(members) != 1:
        raise PinError(f"{where}: a 'binary' artefact has exactly one member")
    return ReleaseRecipe(
        url=_get(table, "url", str, where),
        sha256=sha if sha != SHA256_PLACEHOLDER.lower() else SHA256_PLACEHOLDER,
        format=fmt,
        members=tuple(members),
        checksums_url=_get(table, "checksums_url", str, where, default=""),
    )


def _parse_releases(
    table: Mapping[str, Any], where: str
) -> tuple[ReleaseRecipe, dict[str, ReleaseRecipe], dict[str, str]]:
    """Parse a ``[tools.X.release]`` table and its architecture sub-tables.

    Returns the amd64 release (the table's own keys), the other architectures' releases and
    the reasons of those whose table says ``unavailable``. An architecture's table must name
    its own ``url`` and ``sha256``; ``format``, ``members`` and ``checksums_url`` default to
    the amd64 release's.
    """
    others = ARCHITECTURES[1:]
    for key, value in table.items():
        if isinstance(value, dict) and key not in others:
            raise PinError(
                f"{where}.{key}: only {', '.join(others)} may be a sub-table of a release "
                f"(the linux_{DEFAULT_ARCH} release is the table's own keys)"
            )
    own = {key: value for key, value in table.items() if key not in others}
    default = _parse_release(own, where)
    releases: dict[str, ReleaseRecipe] = {}
    unavailable: dict[str, str] = {}
    for arch in others:
        if arch not in table:
            continue
        awhere = f"{where}.{arch}"
        sub = table[arch]
        _require_table(sub, awhere)
        reason = " ".join(_get(sub, "unavailable", str, awhere, default="").split())
        if reason:
            unavailable[arch] = reason
            continue
        for key in ("url", "sha256"):
            if key not in sub:
                raise PinError(
                    f"{awhere}: missing key {key!r}: an architecture names its own artefact and "
                    f'sha256 ("{SHA256_PLACEHOLDER}" with a checksums_url), or says unavailable = "reason"'
                )
        releases[arch] = _parse_release({**own, **{k: v for k, v in sub.items() if k != "unavailable"}},
                                        awhere)
    return default, releases, unavailable


def _require_table(value: object, where: str) -> None:
    """Raise PinError unless ``value`` is a TOML table."""
    if not isinstance(value, dict):
        raise PinError(f"{where}: expected a table in versions.toml")


def _checked_name(name: str, where: str) -> str:
    """Reject names that could escape the bin dir."""
    if not _NAME_RE.match(name):
        raise PinError(f"{where}.name: {name!r} is not a plain file name")
    return name


def _parse_build(table: Mapping[str, Any], where: str) -> BuildRecipe:
    """Parse a ``[tools.X.build]`` table."""
    require = _strings(table, "require", where)
    if not require:
        raise PinError(f"{where}.require: at least one module@version is needed")
    for item in require + _strings(table, "licence_check", where):
        if not _MODULE_AT_RE.match(item):
            raise PinError(f"{where}: {item!r} is not of the form module@vVERSION")
    for item in _strings(table, "replace", where):
        if "=>" not in item:
            raise PinError(f"{where}.replace: {item!r} lacks '=>'")
    binaries = []
    for i, raw in enumerate(_get(table, "binaries", list, where)):
        bwhere = f"{where}.binaries[{i}]"
        _require_table(raw, bwhere)
        binaries.append(
            GoBinary(
                name=_checked_name(_get(raw, "name", str, bwhere), bwhere),
                package=_get(raw, "package", str, bwhere),
                ldflags=_strings(raw, "ldflags", bwhere),
            )
        )
    files = []
    for i, raw in enumerate(_get(table, "files", list, where, default=[])):
        fwhere = f"{where}.files[{i}]"
        _require_table(raw, fwhere)
        files.append(
            ModuleFile(
                name=_checked_name(_get(raw, "name", str, fwhere), fwhere),
                module=_get(raw, "module", str, fwhere),
                path=_get(raw, "path", str, fwhere),
                optional=_get(raw, "optional", bool, fwhere, default=False),
            )
        )
    if not binaries:
        raise PinError(f"{where}.binaries: at least one Go binary is needed")
    return BuildRecipe(
        go=_get(table, "go", str, where),
        require=require,
        replace=_strings(table, "replace", where),
        binaries=tuple(binaries),
        files=tuple(files),
        tags=_strings(table, "tags", where),
        cgo=_get(table, "cgo", bool, where, default=False),
        commit=_get(table, "commit", str, where, default=""),
        licence_check=_strings(table, "licence_check", where),
        unavailable=" ".join(_get(table, "unavailable", str, where, default="").split()),
    )


def _parse_tool(
    name: str, table: Mapping[str, Any], where: str = "", is_default: bool = True
) -> ToolPin:
    """Parse one ``[tools.NAME]`` table (or a merged extra version of it)."""
    where = where or f"tools.{name}"
    licences = _strings(table, "licences", where)
    unknown = [lic for lic in licences if lic not in KNOWN_LICENCES]
    if not licences or unknown:
        raise PinError(f"{where}.licences: must list only {sorted(KNOWN_LICENCES)}, got {list(licences)}")
    release, arch_releases, arch_unavailable = _parse_releases(
        _get(table, "release", dict, where), f"{where}.release"
    )
    pin = ToolPin(
        name=_checked_name(name, where),
        version=_checked_version(_get(table, "version", str, where), where),
        licences=licences,
        main=_get(table, "main", str, where),
        env=_get(table, "env", str, where, default=""),
        on_path=_get(table, "on_path", bool, where, default=False),
        release=release,
        build=_parse_build(_get(table, "build", dict, where), f"{where}.build"),
        is_default=is_default,
        arch_releases=arch_releases,
        arch_unavailable=arch_unavailable,
    )
    if pin.main not in pin.binary_names:
        raise PinError(f"{where}.main: {pin.main!r} is not among the built binaries")
    for arch, recipe in {DEFAULT_ARCH: release, **arch_releases}.items():
        if pin.main not in [m.name for m in recipe.members]:
            suffix = "" if arch == DEFAULT_ARCH else f".{arch}"
            raise PinError(f"{where}.main: {pin.main!r} is not among the release{suffix} members")
    return pin


def _checked_version(version: str, where: str) -> str:
    """Reject versions that are not a plain version (they name a cache directory)."""
    if not _VERSION_RE.match(version):
        raise PinError(f"{where}.version: {version!r} is not a version such as 1.2.3")
    return version


def merge_version(
    base: Mapping[str, Any], override: Mapping[str, Any], version: str
) -> dict[str, Any]:
    """The table of an extra version: the tool's table with the override's keys replaced.

    ``release`` and ``build`` are merged key by key (a list given in the override replaces
    the default's list whole), and so is each architecture's table of ``release``; every
    other key replaces the default's value.
    """
    merged = {key: value for key, value in base.items() if key != "versions"}
    for key, value in override.items():
        sub = base.get(key)
        if key in ("release", "build") and isinstance(value, dict) and isinstance(sub, dict):
            merged[key] = {**sub, **value}
            for arch in ARCHITECTURES[1:]:
                if key == "release" and isinstance(sub.get(arch), dict) and isinstance(value.get(arch), dict):
                    merged[key][arch] = {**sub[arch], **value[arch]}
        else:
            merged[key] = value
    merged["version"] = version
    return merged


def _inherited(override: Mapping[str, Any], table: str, key: str) -> bool:
    """True when the override does not set ``table.key`` (the default's value carries over)."""
    sub = override.get(table)
    return not isinstance(sub, dict) or key not in sub


def _check_inheritance(default: ToolPin, override: Mapping[str, Any], where: str) -> None:
    """Refuse inherited values that can only belong to the default version.

    An extra version that does not override them would otherwise verify the default's
    artefact checksum or build the default's source under its own version.
    """
    if default.release.sha256_pinned and _inherited(override, "release", "sha256"):
        raise PinError(
            f"{where}.release.sha256: not set, so it would inherit {default.version}'s sha256; "
            f'pin this version\'s own value, or "{SHA256_PLACEHOLDER}"'
        )
    for arch, recipe in default.arch_releases.items():
        own = override.get("release", {}).get(arch)
        if recipe.sha256_pinned and not (isinstance(own, dict) and ("sha256" in own or "unavailable" in own)):
            raise PinError(
                f"{where}.release.{arch}.sha256: not set, so it would inherit {default.version}'s "
                f'linux_{arch} sha256; pin this version\'s own value, "{SHA256_PLACEHOLDER}" with a '
                f'checksums_url, or say unavailable = "reason"'
            )
    if default.build.commit and _inherited(override, "build", "commit"):
        raise PinError(
            f"{where}.build.commit: not set, so it would inherit {default.version}'s commit "
            f"{default.build.commit}; set this version's commit"
        )
    markers = [f"@v{default.version}", f" v{default.version}"]
    if default.build.commit:
        markers.append(default.build.commit[:12])
    for key in ("require", "replace", "licence_check"):
        values = getattr(default.build, key)
        if _inherited(override, "build", key) and any(m in v for m in markers for v in values):
            raise PinError(
                f"{where}.build.{key}: not set, so it would inherit entries that name "
                f"{default.version} or its commit; list this version's own {key}"
            )


def _parse_versions(name: str, table: Mapping[str, Any], default: ToolPin) -> dict[str, ToolPin]:
    """Parse the ``[tools.NAME.versions."VERSION"]`` tables of one tool."""
    extras: dict[str, ToolPin] = {}
    for version, override in _get(table, "versions", dict, f"tools.{name}", default={}).items():
        where = f'tools.{name}.versions."{version}"'
        _require_table(override, where)
        shared = [key for key in SHARED_KEYS if key in override]
        if shared:
            raise PinError(
                f"{where}: {', '.join(shared)} cannot differ between versions (the version is the "
                "table's name; main, env and on_path are the tool's); remove it"
            )
        if version == default.version:
            raise PinError(f"{where}: {version} is already the default version; remove this table")
        merged = merge_version(table, override, _checked_version(version, where))
        extras[version] = _parse_tool(name, merged, where, is_default=False)
        _check_inheritance(default, override, where)
    return extras


def parse_pins(data: Mapping[str, Any]) -> Pins:
    """Validate parsed TOML data and return :class:`Pins`."""
    settings_table = _get(data, "settings", dict, "settings")
    settings = Settings(
        goproxy=_get(settings_table, "goproxy", str, "settings"),
        forbidden_modules=_strings(settings_table, "forbidden_modules", "settings"),
    )
    if "direct" in settings.goproxy.replace("|", ",").split(","):
        raise PinError("settings.goproxy: must not contain 'direct' (only the module proxy)")
    tools_table = _get(data, "tools", dict, "tools")
    tools = {name: _parse_tool(name, table) for name, table in tools_table.items()}
    if not tools:
        raise PinError("tools: versions.toml pins no tool")
    extras = {name: _parse_versions(name, tools_table[name], pin) for name, pin in tools.items()}
    return Pins(settings=settings, tools=tools, extras={k: v for k, v in extras.items() if v})


def pins_file() -> Path:
    """The pin file in use: ``$HASHICLUSTER_VERSIONS`` when set, else the project's versions.toml."""
    value = os.environ.get(VERSIONS_ENV, "").strip()
    return Path(value) if value else PINS_FILE


def load_pins(path: Path | None = None) -> Pins:
    """Read and validate a pin file (default: :func:`pins_file`)."""
    path = path or pins_file()
    from_env = path != PINS_FILE and path == pins_file()
    where = f"pin file {path}" + (f" (${VERSIONS_ENV})" if from_env else "")
    fix = f"; point ${VERSIONS_ENV} at a versions.toml, or unset it for the project's" if from_env else ""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PinError(f"{where} does not exist{fix}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PinError(f"{where} is not valid TOML: {exc}{fix}") from None
    return parse_pins(data)
