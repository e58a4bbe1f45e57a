"""Make sure pinned tools are installed: verify the cache, else download or build them."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from toolchain import gobuild, release
from toolchain.errors import ToolchainError
from toolchain.locks import exclusive_lock
from toolchain.manifest import (
    Manifest,
    describe_files,
    read_manifest,
    verify_install,
    write_manifest,
)
from toolchain.paths import Layout
from toolchain.pins import DEFAULT_ARCH, Pins, ToolPin

SOURCES = ("release", "build")
SOURCE_ENV = "HASHICLUSTER_TOOLCHAIN_SOURCE"


def resolve_source(cli_value: str | None) -> str:
    """``--source`` wins, then $HASHICLUSTER_TOOLCHAIN_SOURCE, then ``release``."""
    value = cli_value or os.environ.get(SOURCE_ENV, "").strip() or "release"
    if value not in SOURCES:
        raise ToolchainError(
            f"unknown source {value!r} (from --source or ${SOURCE_ENV}); use one of " + ", ".join(SOURCES)
        )
    return value


@dataclass(frozen=True)
class Outcome:
    """What ensure did for one tool."""

    tool: str
    version: str
    action: str  # "cached", "built", "downloaded" or "failed"
    seconds: float
    error: str = ""
    arch: str = DEFAULT_ARCH


class Progress:
    """Thread-safe progress on a stream: one line per event, and while a tool builds or
    downloads, what it is doing (`tick`): on a terminal one line rewritten in place, elsewhere
    (CI, a log) a plain line now and then."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.terminal = stream.isatty()
        self._ticking = False  # a tick line is on the terminal, not ended

    @staticmethod
    def _prefix(pin: ToolPin) -> str:
        arch = "" if pin.arch == DEFAULT_ARCH else f" {pin.platform}"
        return f"[{pin.name} {pin.version}{arch}]"

    def say(self, pin: ToolPin, message: str) -> None:
        """Print ``[tool version] message`` (``[tool version linux_arm64]`` for another arch)."""
        self.note(f"{self._prefix(pin)} {message}")

    def note(self, line: str) -> None:
        """Print LINE as an event of its own."""
        with self._lock:
            clear = "\r\033[K" if self._ticking else ""
            self._ticking = False
            print(f"{clear}{line}", file=self._stream, flush=True)

    def tick(self, pin: ToolPin, message: str) -> None:
        """Show what PIN's install is doing now."""
        line = f"{self._prefix(pin)} {message}"
        if not self.terminal:
            self.note(line)
            return
        with self._lock:
            width = shutil.get_terminal_size().columns - 1
            self._stream.write(f"\r\033[K{line[:width]}")
            self._stream.flush()
            self._ticking = True


# How often a running install says what it does: every second on a terminal, else every 30 s.
TICK_TERMINAL, TICK_PLAIN = 1.0, 30.0


def _last_line(path: Path, limit: int = 8192) -> str:
    """The last non-empty line of the file at PATH (its last LIMIT bytes read)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _downloaded(downloads: Path) -> int:
    """Bytes in the partial downloads (``*.part``) under DOWNLOADS."""
    return sum(p.stat().st_size for p in downloads.glob("*.part") if p.is_file())


def activity(source: str, log_path: Path, downloads: Path) -> str:
    """What an install is doing: a build, the last line of its log (`go build -v` lists each
    package as it compiles it; `go mod download`, each module); a download, the bytes so far."""
    if source == "build":
        line = _last_line(log_path)
        return line if not line.startswith(("#", "$")) else "starting go"
    return f"{_downloaded(downloads) / 2**20:.1f} MiB downloaded"


@contextmanager
def heartbeat(progress: Progress, pin: ToolPin, source: str, log_path: Path,
              downloads: Path) -> Iterator[None]:
    """While the body runs, tick PROGRESS with the elapsed time and the install's activity."""
    stop = threading.Event()
    start = time.monotonic()
    interval = TICK_TERMINAL if progress.terminal else TICK_PLAIN

    def beat() -> None:
        while not stop.wait(interval):
            elapsed = format_seconds(time.monotonic() - start)
            progress.tick(pin, f"{elapsed}: {activity(source, log_path, downloads)}")

    thread = threading.Thread(target=beat, name=f"heartbeat-{pin.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def format_seconds(seconds: float) -> str:
    """``42.0s`` or ``3m05s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def now_iso() -> str:
    """Current UTC time, RFC 3339, second precision."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@contextmanager
def tool_lock(layout: Layout, tool: str, arch: str = DEFAULT_ARCH) -> Iterator[None]:
    """Hold an exclusive lock for one tool (of one architecture) so concurrent ensures do not
    collide."""
    path = layout.lock_file(tool, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path):
        yield


def required_names(pin: ToolPin, source: str) -> list[str]:
    """Binaries an install must contain: the main one plus the non-optional extras."""
    if source == "release":
        return [m.name for m in release.recipe(pin).members if not m.optional]
    names = [b.name for b in pin.build.binaries]
    return names + [f.name for f in pin.build.files if not f.optional]


def check_cached(layout: Layout, pin: ToolPin) -> str | None:
    """None if the pinned version is installed and intact, else why it is not usable."""
    tool_dir = layout.tool_dir(pin.name, pin.version, pin.arch)
    if not tool_dir.is_dir():
        return "not installed"
    manifest = read_manifest(tool_dir)
    source = manifest.source if manifest and manifest.source in SOURCES else "build"
    if manifest and source == "build":
        recorded = manifest.details.get("local_sources_sha256", "")
        if recorded != gobuild.local_sources_digest(pin):
            return "the project's own sources for it (toolchain/) changed since it was built"
    return verify_install(tool_dir, pin.name, pin.version, required_names(pin, source), pin.arch)


def install_atomically(stage: Path, final: Path) -> None:
    """Move a complete staged tool dir into place, replacing any previous one."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def precheck(pin: ToolPin, source: str) -> None:
    """Refuse early (before any log or download) when the source cannot provide the tool."""
    if source == "release":
        if not release.recipe(pin).checksums_url:
            release.require_pinned_sha256(pin)
        release.source_of(release.artefact_url(pin))  # a bad URL or mirror: refused before any log
    else:
        gobuild.check_buildable(pin)


Installer = Callable[[ToolPin, Path, Path], tuple[list[str], dict[str, Any]]]


def _install(layout: Layout, pin: ToolPin, source: str, installer: Installer, log_path: Path) -> None:
    """Stage with ``installer``, write the manifest, move into place."""
    layout.ensure_dirs()
    scratch = Path(tempfile.mkdtemp(prefix=f"{pin.name}-{pin.version}-{pin.arch}-", dir=layout.tmp))
    try:
        stage = scratch / "tool"
        stage.mkdir()
        names, details = installer(pin, stage, log_path)
        shutil.rmtree(stage / "src", ignore_errors=True)
        manifest = Manifest(
            tool=pin.name,
            version=pin.version,
            source=source,
            installed_at=now_iso(),
            files=describe_files(stage, names),
            details=details,
            arch=pin.arch,
        )
        write_manifest(stage, manifest)
        install_atomically(stage, layout.tool_dir(pin.name, pin.version, pin.arch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_tool(layout: Layout, pins: Pins, pin: ToolPin, source: str, progress: Progress) -> Outcome:
    """Ensure one tool; never raises for tool-level problems (they become 'failed')."""
    start = time.monotonic()
    try:
        with tool_lock(layout, pin.name, pin.arch):
            problem = check_cached(layout, pin)
            if problem is None:
                elapsed = time.monotonic() - start
                progress.say(pin, f"cached ({format_seconds(elapsed)})")
                return Outcome(pin.name, pin.version, "cached", elapsed, arch=pin.arch)
            if problem != "not installed":
                progress.say(pin, f"cached copy unusable ({problem}); reinstalling")
            precheck(pin, source)
            layout.logs.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            arch = "" if pin.arch == DEFAULT_ARCH else f"-{pin.platform}"
            log_path = layout.logs / f"{pin.name}-{pin.version}{arch}-{source}-{stamp}.log"
            verb = "building" if source == "build" else "downloading"
            progress.say(pin, f"{verb} (log: {log_path})")
            installer = _build_installer(pins) if source == "build" else _release_installer(layout)
            with heartbeat(progress, pin, source, log_path, layout.downloads):
                _install(layout, pin, source, installer, log_path)
    except ToolchainError as exc:
        elapsed = time.monotonic() - start
        progress.say(pin, f"FAILED after {format_seconds(elapsed)}: {exc}")
        return Outcome(pin.name, pin.version, "failed", elapsed, str(exc), pin.arch)
    elapsed = time.monotonic() - start
    if source == "build":
        record_build_seconds(layout, pin, elapsed)
    action = "built" if source == "build" else "downloaded"
    progress.say(pin, f"{action} in {format_seconds(elapsed)}")
    return Outcome(pin.name, pin.version, action, elapsed, arch=pin.arch)


# What a first build of every tool took on this project's 2-core test host with Go's module
# cache empty (most of it downloading and compiling modules once): the estimate before builds
# this cache has no record of.
FIRST_BUILD_MINUTES = 15
_times_lock = threading.Lock()


def _times_file(layout: Layout) -> Path:
    return layout.root / "build-times.json"


def recorded_build_seconds(layout: Layout) -> dict[str, float]:
    """How long each tool's last build from source took here (``tool@version@arch`` keys)."""
    try:
        data = json.loads(_times_file(layout).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_build_seconds(layout: Layout, pin: ToolPin, seconds: float) -> None:
    with _times_lock:
        times = recorded_build_seconds(layout)
        times[f"{pin.name}@{pin.version}@{pin.arch}"] = round(seconds, 1)
        path = _times_file(layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def build_estimate(layout: Layout, pins: Sequence[ToolPin]) -> str:
    """What building PINS is likely to take: the sum of their last builds here, or, for a tool
    never built here, the first-build figure of this project's test host."""
    times = recorded_build_seconds(layout)
    known = [times.get(f"{p.name}@{p.version}@{p.arch}") for p in pins]
    if all(t is not None for t in known):
        return f"about {format_seconds(sum(t or 0.0 for t in known))}, as their last builds here"
    return (f"up to about {FIRST_BUILD_MINUTES} minutes for all of them on 2 cores the first time "
            "(Go downloads and compiles their modules once; later builds take a minute or two)")


def _build_installer(pins: Pins) -> Installer:
    """An installer that builds with go, logging to the given log file."""

    def install(pin: ToolPin, stage: Path, log_path: Path) -> tuple[list[str], dict[str, Any]]:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"# {pin.name} {pin.version} ({pin.platform}) build started {now_iso()}\n")
            ctx = gobuild.GoContext(
                pin=pin,
                settings=pins.settings,
                log_path=log_path,
                log=log,
                env=gobuild.go_env(pin, pins.settings),
            )
            return gobuild.build_tool(ctx, stage)

    return install


def _release_installer(layout: Layout) -> Installer:
    """An installer that downloads and verifies the official artefact."""

    def install(pin: ToolPin, stage: Path, log_path: Path) -> tuple[list[str], dict[str, Any]]:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"# {pin.name} {pin.version} from "
                      f"{release.source_of(release.artefact_url(pin)).describe()}\n")
            names, details = release.install_release(pin, layout.downloads, stage)
            log.write(f"verified sha256 {details['artefact_sha256']} (from {details['sha256_source']}); "
                      f"installed {', '.join(names)}\n")
        return names, dict(details)

    return install


def select_pins(pins: Pins, specs: Sequence[str], arch: str = DEFAULT_ARCH) -> list[ToolPin]:
    """The pins named by ``TOOL``/``TOOL@VERSION`` specs, each once, in order, for ``arch``.

    With no specs, the default version of every tool pinned for ``arch`` (extra versions only
    when named). A named tool that is not pinned for ``arch`` is refused (PinError).
    """
    if not specs:
        return [pin.for_arch(arch) for pin in pins.tools.values() if arch in pin.architectures]
    selected: dict[tuple[str, str], ToolPin] = {}
    for spec in specs:
        pin = pins.select(spec).for_arch(arch)
        selected.setdefault((pin.name, pin.version), pin)
    return list(selected.values())


def ensure(
    layout: Layout,
    pins: Pins,
    tools: Sequence[str],
    source: str,
    jobs: int = 1,
    stream: TextIO | None = None,
    arch: str = DEFAULT_ARCH,
) -> list[Outcome]:
    """Ensure each named tool (``TOOL`` or ``TOOL@VERSION``; the default version of every
    tool pinned for ``arch`` when none are named) for ``arch``."""
    selected = select_pins(pins, tools, arch)
    progress = Progress(stream or sys.stderr)
    if source == "build":
        to_build = [pin for pin in selected if check_cached(layout, pin) is not None]
        if to_build:
            progress.note(f"toolchain: {len(to_build)} to build from source "
                          f"({', '.join(p.spec for p in to_build)}): {build_estimate(layout, to_build)}")
    if jobs <= 1:
        return [ensure_tool(layout, pins, pin, source, progress) for pin in selected]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda p: ensure_tool(layout, pins, p, source, progress), selected))
