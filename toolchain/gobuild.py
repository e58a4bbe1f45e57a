"""Build a tool from source with ``go`` through the module proxy, in a wrapper module.

Every tool is built the same way: a throw-away module requires the pinned modules (and
copies the ``replace`` lines a module's own go.mod would need, since a dependency's replaces
are ignored), ``go mod tidy`` resolves the rest through the proxy, ``go build`` compiles the
pinned main packages. Before anything beyond the pinned modules is fetched, each pinned
module's LICENSE and go.mod are checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolchain.errors import BuildError, ForbiddenModuleError, ToolchainError, UnavailableError
from toolchain.licence import check_module_licence
from toolchain.pins import DEFAULT_ARCH, Settings, ToolPin

GOPROXY_ENV = "HASHICLUSTER_GOPROXY"
WRAPPER_PREFIX = "hashicluster.local/toolchain/"
#: Where ``./DIR`` packages of a recipe come from (this package's directory).
LOCAL_SOURCES = Path(__file__).parent


def is_local(package: str) -> bool:
    """True for a ``./DIR`` package kept in this repository (copied into the wrapper)."""
    return package.startswith("./")


@dataclass
class GoContext:
    """What a build needs besides the pin: settings, the log, the go environment."""

    pin: ToolPin
    settings: Settings
    log_path: Path
    log: IO[str]
    env: dict[str, str]


def go_env(pin: ToolPin, settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for go commands: proxy only, no workspace, cgo as pinned, Linux on the
    pin's architecture (GOOS/GOARCH: a cross-build for arm64).

    GOMODCACHE and GOCACHE keep the user's defaults so repeat builds are fast.
    """
    env = dict(os.environ if base is None else base)
    env["GOPROXY"] = env.get(GOPROXY_ENV) or settings.goproxy
    env["GOFLAGS"] = "-buildvcs=false"
    env["GOWORK"] = "off"
    env["GO111MODULE"] = "on"
    env["CGO_ENABLED"] = "1" if pin.build.cgo else "0"
    env["GOOS"] = "linux"
    env["GOARCH"] = pin.arch
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def wrapper_go_mod(pin: ToolPin) -> str:
    """The go.mod of the wrapper module that builds ``pin``."""
    lines = [f"module {WRAPPER_PREFIX}{pin.name}", "", f"go {pin.build.go}", "", "require ("]
    lines += [f"\t{item.replace('@', ' ', 1)}" for item in pin.build.require]
    lines.append(")")
    if pin.build.replace:
        lines += ["", "replace ("]
        lines += [f"\t{item}" for item in pin.build.replace]
        lines.append(")")
    return "\n".join(lines) + "\n"


def wrapper_tools_go(pin: ToolPin) -> str:
    """A file importing the main packages so that ``go mod tidy`` keeps their deps.

    Local ``./DIR`` packages are part of the wrapper module and need no import.
    """
    remote = [b.package for b in pin.build.binaries if not is_local(b.package)]
    imports = "\n".join(f'\t_ "{package}"' for package in remote)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def copy_local_packages(pin: ToolPin, src: Path, sources: Path = LOCAL_SOURCES) -> list[str]:
    """Copy the ``*.go`` files of each ``./DIR`` package from ``sources/DIR`` into ``src/DIR``."""
    copied = []
    for binary in pin.build.binaries:
        if not is_local(binary.package):
            continue
        rel = binary.package[2:]
        origin = sources / rel
        files = sorted(origin.glob("*.go")) if origin.is_dir() else []
        if not files or ".." in Path(rel).parts:
            raise ToolchainError(
                f"{pin.name} {pin.version}: local package {binary.package} has no Go files in "
                f"{origin}; fix tools.{pin.name}.build.binaries in versions.toml"
            )
        (src / rel).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copyfile(file, src / rel / file.name)
        copied.append(rel)
    return copied


def local_sources_digest(pin: ToolPin, sources: Path = LOCAL_SOURCES) -> str:
    """sha256 over the Go files of the tool's ``./DIR`` packages ("" when it has none).

    Recorded in the manifest, so a changed local package is rebuilt even though the
    pinned version stays the same.
    """
    digest = hashlib.sha256()
    found = False
    for binary in pin.build.binaries:
        if not is_local(binary.package):
            continue
        rel = binary.package[2:]
        for file in sorted((sources / rel).glob("*.go")):
            if file.name.endswith("_test.go"):
                continue
            found = True
            digest.update(f"{rel}/{file.name}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest() if found else ""


def strip_go_mod_comments(text: str) -> str:
    """Drop ``//`` comments from go.mod text."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def forbidden_in(text: str, forbidden: Sequence[str]) -> list[str]:
    """Forbidden module paths that occur (as a whole word, or a sub-path) in ``text``."""
    hits = []
    for module in forbidden:
        if re.search(rf"(?<![\w./-]){re.escape(module)}(?=[\s@/]|$)", text, re.M):
            hits.append(module)
    return hits


def check_forbidden(where: str, text: str, forbidden: Sequence[str]) -> None:
    """Raise ForbiddenModuleError if a forbidden module is named in ``text``."""
    hits = forbidden_in(strip_go_mod_comments(text), forbidden)
    if hits:
        raise ForbiddenModuleError(
            f"refusing to build: {where} needs {', '.join(hits)}, which must never be "
            "downloaded or built (not open source); pin an older version in versions.toml"
        )


def run_go(ctx: GoContext, args: Sequence[str], cwd: Path, capture: bool = False, check: bool = True) -> str:
    """Run ``go ARGS`` logging to the build log; raise BuildError naming the log on failure.

    With ``capture`` the command's stdout is returned (and also written to the log); with
    ``check=False`` a failing command's stdout is returned instead of raising.
    """
    ctx.log.write(f"\n$ (cd {cwd} && go {' '.join(args)})\n")
    ctx.log.flush()
    go = shutil.which("go", path=ctx.env.get("PATH"))
    if go is None:
        raise BuildError(
            f"{ctx.pin.name} {ctx.pin.version}: the go command is not on PATH; install Go "
            "1.26 or newer, or use --source release"
        )
    proc = subprocess.run(
        [go, *args],
        cwd=cwd,
        env=ctx.env,
        stdout=subprocess.PIPE if capture else ctx.log,
        stderr=ctx.log,
        text=True,
        check=False,
    )
    if capture and proc.stdout:
        ctx.log.write(proc.stdout)
    ctx.log.flush()
    if proc.returncode != 0 and check:
        raise BuildError(
            f"{ctx.pin.name} {ctx.pin.version}: `go {args[0]}` failed (exit {proc.returncode}); "
            f"see {ctx.log_path}"
        )
    return proc.stdout if capture else ""


def download_module(ctx: GoContext, module_at: str, cwd: Path) -> dict[str, Any]:
    """``go mod download -json module@version``; return its JSON (Dir, GoMod, Info...)."""
    out = run_go(ctx, ["mod", "download", "-json", module_at], cwd, capture=True, check=False)
    try:
        data: dict[str, Any] = json.loads(out)
    except ValueError:
        raise BuildError(
            f"{ctx.pin.name} {ctx.pin.version}: `go mod download {module_at}` failed; see {ctx.log_path}"
        ) from None
    if data.get("Error"):
        raise BuildError(
            f"{ctx.pin.name} {ctx.pin.version}: the module proxy did not serve {module_at}: "
            f"{data['Error'].splitlines()[0]}; see {ctx.log_path}"
        )
    return data


def check_pinned_modules(ctx: GoContext, scratch: Path) -> str:
    """Download each pinned module, check its LICENSE and go.mod; return the {date} value.

    {date} is the first required module's commit time as the proxy reports it.
    """
    date = ""
    for module_at in ctx.pin.build.modules_to_check:
        info = download_module(ctx, module_at, scratch)
        spdx = check_module_licence(module_at, Path(info["Dir"]), ctx.pin.licences)
        ctx.log.write(f"licence of {module_at}: {spdx} (allowed: {', '.join(ctx.pin.licences)})\n")
        go_mod = Path(info["GoMod"]).read_text(encoding="utf-8")
        check_forbidden(f"{module_at} (its go.mod)", go_mod, ctx.settings.forbidden_modules)
        if not date and info.get("Info"):
            date = str(json.loads(Path(info["Info"]).read_text(encoding="utf-8")).get("Time", ""))
    return date


_MODULE_FORMAT = (
    "{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}"
)


def linked_modules(ctx: GoContext, src: Path) -> str:
    """Sorted ``path version [=> replacement]`` lines of the modules the binaries link.

    (``go list -m all`` would also ask the proxy about modules that are in the graph but
    not built, some of which it refuses.)
    """
    packages = [b.package for b in ctx.pin.build.binaries]
    out = run_go(ctx, ["list", "-deps", "-f", _MODULE_FORMAT, *packages], src, capture=True)
    lines = sorted({line.strip() for line in out.splitlines() if line.strip()})
    return "\n".join(lines) + "\n"


def ldflags_for(pin: ToolPin, extra: Sequence[str], date: str) -> str:
    """The -ldflags value: strip symbols plus the pinned -X version flags."""
    return " ".join(["-s", "-w", *(pin.expand(flag, date=date) for flag in extra)])


def copy_module_file(ctx: GoContext, src_dir: Path, module: str, rel: str, target: Path) -> bool:
    """Copy a file out of a module of the wrapper's build list; False if it is absent."""
    out = run_go(ctx, ["list", "-m", "-json", module], src_dir, capture=True)
    module_dir = json.loads(out).get("Dir")
    if not module_dir:
        version = json.loads(out)["Version"]
        module_dir = download_module(ctx, f"{module}@{version}", src_dir)["Dir"]
    source = Path(module_dir) / rel
    if not source.is_file():
        return False
    shutil.copyfile(source, target)
    target.chmod(0o755)
    return True


def check_buildable(pin: ToolPin) -> None:
    """Raise UnavailableError when the pin's recipe cannot be built here for its architecture."""
    if pin.build.unavailable:
        raise UnavailableError(
            f"{pin.name} {pin.version} cannot be built from source here: "
            f"{pin.build.unavailable}; use --source release"
        )
    if pin.build.cgo and pin.arch != DEFAULT_ARCH:
        raise UnavailableError(
            f"{pin.name} {pin.version} cannot be cross-built for {pin.platform}: its recipe needs cgo "
            f"(tools.{pin.name}.build.cgo), and cross-builds are pure Go (CGO_ENABLED=0, no C "
            f"cross-compiler); use --source release --arch {pin.arch}"
        )


def build_tool(ctx: GoContext, stage: Path) -> tuple[list[str], dict[str, Any]]:
    """Build ``ctx.pin`` into ``stage/bin``; return installed names and manifest details."""
    pin = ctx.pin
    check_buildable(pin)
    src = stage / "src"
    bin_dir = stage / "bin"
    src.mkdir(parents=True)
    bin_dir.mkdir(parents=True)
    date = check_pinned_modules(ctx, src)
    (src / "go.mod").write_text(wrapper_go_mod(pin), encoding="utf-8")
    (src / "tools.go").write_text(wrapper_tools_go(pin), encoding="utf-8")
    local = copy_local_packages(pin, src)
    run_go(ctx, ["mod", "tidy"], src)
    for name in ("go.mod", "go.sum"):
        text = (src / name).read_text(encoding="utf-8") if (src / name).exists() else ""
        check_forbidden(f"{pin.name} (wrapper {name})", text, ctx.settings.forbidden_modules)
    modules = linked_modules(ctx, src)
    check_forbidden(f"the build list of {pin.name}", modules, ctx.settings.forbidden_modules)
    (stage / "modules.txt").write_text(modules, encoding="utf-8")
    installed: list[str] = []
    for binary in pin.build.binaries:
        # -v: each package's name in the log as it is compiled (the progress shows the latest).
        args = ["build", "-v", "-trimpath", "-ldflags", ldflags_for(pin, binary.ldflags, date)]
        if pin.build.tags:
            args += ["-tags", ",".join(pin.build.tags)]
        args += ["-o", str(bin_dir / binary.name), binary.package]
        run_go(ctx, args, src)
        installed.append(binary.name)
    for item in pin.build.files:
        if copy_module_file(ctx, src, item.module, item.path, bin_dir / item.name):
            installed.append(item.name)
        elif not item.optional:
            raise ToolchainError(
                f"{pin.name} {pin.version}: {item.module} has no {item.path}; "
                f"fix tools.{pin.name}.build.files in versions.toml"
            )
    go_version = run_go(ctx, ["env", "GOVERSION"], src, capture=True).strip()
    details = {
        "go": go_version,
        "goos_goarch": f"{ctx.env['GOOS']}/{ctx.env['GOARCH']}",
        "cgo": pin.build.cgo,
        "tags": list(pin.build.tags),
        "require": list(pin.build.require),
        "replace": list(pin.build.replace),
        "goproxy": ctx.env["GOPROXY"],
        "local_packages": [f"toolchain/{rel}" for rel in local],
        "local_sources_sha256": local_sources_digest(pin),
    }
    return installed, details
