"""The benchmark's workspace: a copy of the project with its own Pulumi backend and stack,
and the commands run in it (Pulumi inside the lab network, timed, with its event log).

Every command runs in a session of its own, so that a Ctrl-C reaches it only through the
benchmark, which passes it on as SIGINT (Pulumi then stops between steps) and waits.
Each command's output goes to a log file under the workspace's `logs/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import eventlog, memory
from lab import worktree
from lab.errors import LabError
from toolchain.api import installed
from toolchain.errors import ToolchainError
from toolchain.paths import Layout
from toolchain.pins import load_pins
from toolchain.plugins import link_plugins

ROOT = Path(__file__).resolve().parents[1]
STACK = "bench"
NETWORK = "10.210.4.0/24"
PASSPHRASE = "bench"
POLL = 0.05  # seconds between two looks at a growing event log


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message names it, what was seen and the fix."""


# --- running commands -------------------------------------------------------------------------

class EventTail:
    """Notes when each line of a growing event log appears (see eventlog.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[eventlog.Record] = []
        self._pos = 0
        self._partial = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> EventTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()
        if self._partial.strip():  # a last line without its newline: the engine's time only
            self.records.append((None, self._partial.decode(errors="replace")))

    def _loop(self) -> None:
        while not self._stop.wait(POLL):
            self._read()

    def _read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        seen = time.time()
        self._pos += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        self.records += [(seen, line.decode(errors="replace")) for line in lines if line.strip()]


@dataclass(frozen=True)
class Done:
    """A finished command: its wall time, exit status and output."""

    wall: float
    returncode: int
    stdout: str
    stderr: str
    memory: memory.Peaks = field(default_factory=memory.Peaks)  # the peaks while it ran


def run_command(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float,
                log_file: Path | None = None) -> Done:
    """Run CMD in its own session, so a Ctrl-C reaches it only through us: on one, it gets
    SIGINT (Pulumi then stops cleanly between steps) and up to 60 s to finish. LOG_FILE
    gets the command, how it ended and its output, however it ended."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out, err, ended = "", "", "interrupted"
    watch = memory.Watch(proc.pid)
    try:
        with watch:
            out, err = proc.communicate(timeout=timeout)
        ended = f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        out, err = _stop(proc, signal.SIGINT, 30)
        ended = f"stopped after {timeout:.0f}s"
        raise BenchError(f"`{' '.join(cmd)}` did not finish in {timeout:.0f}s; stopped it") from None
    except BaseException:
        out, err = _stop(proc, signal.SIGINT, 60)
        raise
    finally:
        wall = time.monotonic() - start
        if log_file is not None:
            log_file.write_text(f"$ {' '.join(cmd)}\n# cwd {cwd}\n# {ended} after {wall:.2f}s\n"
                                f"--- stdout\n{out}\n--- stderr\n{err}\n")
    return Done(wall, proc.returncode, out, err, watch.peaks)


def _stop(proc: subprocess.Popen[str], sig: signal.Signals, grace: float) -> tuple[str, str]:
    """Send SIG to the command (Pulumi passes a SIGINT on to its plugins itself); when it
    outlives GRACE seconds, or on a second Ctrl-C, kill its whole process group. Returns
    the output it wrote."""
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=grace)
        return out or "", err or ""
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    return out or "", err or ""


def toolchain_path(pulumi_home: Path) -> str:
    """PATH with the toolchain's Pulumi CLI first; its plugins linked into PULUMI_HOME."""
    try:
        cli_dir = str(installed("pulumi").path.parent)
        installed("pulumi-resource-command")
    except ToolchainError as err:
        raise BenchError(f"{err}. Fix: run `./run bench`, which provides the toolchain") from None
    link_plugins(Layout.from_env(), load_pins(), pulumi_home)
    return os.pathsep.join([cli_dir, os.environ.get("PATH", "")])


@dataclass
class Workspace:
    """The project copy, its Pulumi environment and the logs of every command."""

    base: Path
    env: dict[str, str]
    counter: int = 0

    @property
    def project(self) -> Path:
        return self.base / "hashicluster"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @classmethod
    def create(cls, repo: Path) -> Workspace:
        base = Path(tempfile.mkdtemp(prefix="hashicluster-bench-"))
        ws = cls(base, {})
        ws.project.mkdir()
        ws.logs.mkdir()
        try:
            worktree.copy_working_tree(repo, ws.project)
            config = worktree.lab_stack_config(ws.project, NETWORK)
        except LabError as err:
            raise BenchError(str(err)) from None
        (ws.project / "venv").symlink_to(repo / "venv")
        (ws.project / f"Pulumi.{STACK}.yaml").write_text(config)
        (base / "backend").mkdir()
        env = dict(os.environ)
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        env.update(PATH=toolchain_path(base / "pulumi-home"), PULUMI_HOME=str(base / "pulumi-home"),
                   PULUMI_BACKEND_URL=f"file://{base / 'backend'}", PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
                   PULUMI_SKIP_UPDATE_CHECK="true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
                   # shows the hidden --event-log flag of up and preview
                   PULUMI_DEBUG_COMMANDS="true")
        ws.env = env
        return ws

    def _log_file(self, label: str) -> Path:
        self.counter += 1
        return self.logs / f"{self.counter:03d}-{label.replace(' ', '-')}.log"

    def pulumi(self, label: str, *args: str, timeout: float = 1200, events: bool = False,
               log: bool = True) -> tuple[Done, eventlog.EventLog | None]:
        """`pulumi ARGS --stack bench` inside the lab network, timed; with EVENTS, its event
        log too. A failure raises BenchError with the end of its output. LOG=False keeps its
        output out of the log files (secrets)."""
        log_file = self._log_file(label)
        extra: list[str] = []
        event_path = log_file.with_suffix(".events.jsonl")
        if events:
            extra = ["--event-log", str(event_path)]
        extra += worktree.parallel_args(args)  # as ./run passes it
        cmd = [sys.executable, "-m", "lab", "exec", "--", "pulumi", *args, "--stack", STACK,
               "--non-interactive", *extra]
        if events:
            with EventTail(event_path) as tail:
                done = run_command(cmd, self.project, self.env, timeout, log_file)
            parsed: eventlog.EventLog | None = eventlog.parse(tail.records)
        else:
            done, parsed = run_command(cmd, self.project, self.env, timeout, log_file if log else None), None
        if done.returncode != 0:
            raise BenchError(f"`pulumi {' '.join(args)}` exited {done.returncode} (log: {log_file}):\n"
                             f"{(done.stderr.strip() or done.stdout.strip())[-2500:]}")
        return done, parsed

    def in_lab(self, label: str, *args: str, timeout: float = 300, ca_cert: str | None = None,
               env: dict[str, str] | None = None) -> Any:
        """`python3 -m bench ARGS` inside the lab network; its JSON answer. With CA_CERT (the
        cluster's CA), https URLs are checked against it (SSL_CERT_FILE); ENV adds variables
        (the ACL tokens: in the environment, never in the arguments)."""
        log_file = self._log_file(label)
        cmd = [sys.executable, "-m", "lab", "exec", "--", sys.executable, "-m", "bench", *args]
        env = {**self.env, **(env or {})}
        if ca_cert:
            ca_file = self.base / "cluster-ca.pem"
            ca_file.write_text(ca_cert)
            env["SSL_CERT_FILE"] = str(ca_file)
        done = run_command(cmd, ROOT, env, timeout, log_file)
        if done.returncode != 0:
            raise BenchError(f"`python3 -m bench {' '.join(args)}` in the lab network exited "
                             f"{done.returncode} (log: {log_file}):\n{done.stderr.strip()[-1500:]}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"`python3 -m bench {args[0]}` printed no JSON (log: {log_file})") from None

    def lab(self, *args: str, check: bool = True) -> Done:
        done = run_command([sys.executable, "-m", "lab", *args], ROOT, self.env, 300)
        if check and done.returncode != 0:
            raise BenchError(f"`python3 -m lab {' '.join(args)}` exited {done.returncode}: "
                             f"{done.stderr.strip()[-1000:]}")
        return done

    def machines(self) -> list[str]:
        """The lab machines of the benchmark's stack that exist now."""
        status = json.loads(self.lab("status", "--json").stdout)
        return sorted(m["name"] for m in status if m["name"].startswith(f"{STACK}-"))

    def remove_machines(self) -> list[str]:
        """`lab down` every machine of the stack; the names removed."""
        names = self.machines()
        for name in names:
            self.lab("down", name, check=False)
        return names


