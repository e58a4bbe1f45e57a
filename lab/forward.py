"""Loopback forwards: 127.0.0.1:PORT in the host's network namespace -> ADDRESS:PORT in the lab.

A forwarder is one background process, owned by whoever started it (a stack's name, given
with --owner): `--stop --owner STACK` stops that stack's forwards and no other's. It binds
its listening socket while still in the host's namespace, then setns(2)es into the lab
switch's namespace: the listening socket stays where it was made, and every socket it opens
afterwards (the outbound connections) belongs to the lab. Each accepted connection is relayed
by two threads, one per direction.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from lab import deps, log, netns, proc
from lab.errors import LabError
from lab.names import LAB_NETWORK, SWITCH_NETNS
from lab.paths import Paths

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
FORWARDER_ARGV = ("-m", "lab", "_forwarder")


def parse_target(target: str) -> tuple[str, int]:
    """ADDRESS:PORT with ADDRESS in the lab network."""
    host, sep, port = target.rpartition(":")
    fix = "give the target as ADDRESS:PORT, e.g. 10.210.1.10:8500"
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        raise LabError(f"invalid forward target {target!r}: not ADDRESS:PORT", fix) from None
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise LabError(f"invalid forward target {target!r}: bad port", fix)
    if addr not in LAB_NETWORK:
        raise LabError(f"forward target {addr} is outside the lab network {LAB_NETWORK}", fix)
    return str(addr), int(port)


def _record_path(paths: Paths, port: int) -> Path:
    return paths.forwards / f"{port}.json"


def records(paths: Paths) -> list[dict[str, Any]]:
    """Every forward record (stale ones included)."""
    found = []
    for f in sorted(paths.forwards.glob("*.json")) if paths.forwards.is_dir() else []:
        try:
            found.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
    return found


def _alive(rec: dict[str, Any]) -> bool:
    return proc.same_process(int(rec["pid"]), int(rec["starttime"]))


def forwarder_processes() -> list[proc.Process]:
    """Every forwarder process on this host, recorded or not."""
    return [p for p in proc.processes() if tuple(p.argv[1:4]) == FORWARDER_ARGV]


def start(paths: Paths, local_port: int, target: str, owner: str = "") -> int:
    """Start a forwarder in the background (for OWNER) and report where it listens."""
    deps.require_root()
    address, port = parse_target(target)
    for rec in records(paths):
        if rec["local_port"] == local_port:
            if _alive(rec):
                held_by = f" for {rec['owner']}" if rec.get("owner") else ""
                raise LabError(f"127.0.0.1:{local_port} already forwards to {rec['target']}{held_by}",
                               f"python3 -m lab forward --stop {local_port}, or pick another port")
            _record_path(paths, local_port).unlink(missing_ok=True)
    if not netns.exists(SWITCH_NETNS):
        raise LabError("the lab network does not exist yet", "`python3 -m lab up` a machine first")
    _leave_lab_namespace()
    paths.forwards.mkdir(parents=True, exist_ok=True)
    logfile = paths.forwards / f"{local_port}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE_PARENT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with logfile.open("wb") as out:
        child = subprocess.Popen([sys.executable, *FORWARDER_ARGV, str(local_port),
                                  f"{address}:{port}", "--owner", owner],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, env=env, cwd="/")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _record_path(paths, local_port).exists():
            print(f"127.0.0.1:{local_port} -> {address}:{port} (pid {child.pid}; "
                  f"stop it with `python3 -m lab forward --stop {local_port}`)")
            return 0
        if child.poll() is not None:
            reason = logfile.read_text(errors="replace").strip().splitlines()
            raise LabError(f"the forwarder for 127.0.0.1:{local_port} exited: "
                           + (reason[-1] if reason else f"exit {child.returncode}"),
                           "pick another LOCAL_PORT if this one is taken")
        time.sleep(0.05)
    child.kill()
    raise LabError(f"the forwarder for 127.0.0.1:{local_port} did not start", f"read {logfile}")


def _leave_lab_namespace() -> None:
    """Forwards listen in the host's namespace: step out of the lab's (`lab exec`) if needed."""
    here = proc.net_namespace_inode("self")
    lab = {netns.netns_path(ns).stat().st_ino for ns in netns.lab_namespaces()}
    if here not in lab:
        return
    try:
        netns.enter_path(Path("/proc/1/ns/net"))
    except LabError:
        raise LabError("`lab forward` must listen in the host's network namespace, but runs "
                       "inside the lab's (through `lab exec`?) and cannot leave it",
                       "run `python3 -m lab forward ...` outside `lab exec`") from None


def running(paths: Paths) -> list[dict[str, Any]]:
    """The records of the running forwards (records of dead ones are dropped)."""
    alive = []
    for rec in records(paths):
        if _alive(rec):
            alive.append(rec)
        else:
            _record_path(paths, int(rec["local_port"])).unlink(missing_ok=True)
    return alive


def list_forwards(paths: Paths, as_json: bool = False) -> int:
    """Print the running forwards: a line each, or a JSON list of their records."""
    recs = running(paths)
    if as_json:
        print(json.dumps(recs, indent=2))
        return 0
    for rec in recs:
        owner = f", {rec['owner']}" if rec.get("owner") else ""
        print(f"127.0.0.1:{rec['local_port']} -> {rec['target']} (pid {rec['pid']}{owner})")
    return 0


def stop(paths: Paths, local_port: int | None, owner: str | None = None) -> int:
    """Stop the forward on LOCAL_PORT, or all recorded forwards; with OWNER, only its own."""
    recs = [r for r in records(paths) if owner is None or r.get("owner", "") == owner]
    if local_port is not None and all(r["local_port"] != local_port for r in recs):
        log.info(f"no forward on 127.0.0.1:{local_port}" + (f" for {owner}" if owner else ""))
    for rec in recs:
        if local_port is None or rec["local_port"] == local_port:
            if _alive(rec):
                proc.terminate([int(rec["pid"])], 5)
                log.info(f"stopped 127.0.0.1:{rec['local_port']} -> {rec['target']}")
            _record_path(paths, int(rec["local_port"])).unlink(missing_ok=True)
            (paths.forwards / f"{rec['local_port']}.log").unlink(missing_ok=True)
    return 0


def stop_all(paths: Paths) -> None:
    """Stop recorded forwards and any unrecorded forwarder process (for clean-all)."""
    stop(paths, None)
    strays = [p.pid for p in forwarder_processes() if p.pid != os.getpid()]
    if strays:
        proc.terminate(strays, 5)


# ---------------------------------------------------------------- the forwarder itself

def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes from SRC to DST until EOF, then half-close DST."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, address: str, port: int) -> None:
    """Connect to the target (from the lab's namespace) and relay both directions."""
    with client:
        try:
            upstream = socket.create_connection((address, port), timeout=10)
        except OSError as err:
            print(f"connect {address}:{port}: {err}", file=sys.stderr, flush=True)
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


def serve(paths: Paths, local_port: int, target: str, owner: str = "") -> int:
    """Body of the forwarder process: listen on the host's loopback, connect in the lab."""
    address, port = parse_target(target)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", local_port))
    except OSError as err:
        raise LabError(f"cannot listen on 127.0.0.1:{local_port}: {err.strerror}") from None
    listener.listen(64)
    netns.enter(SWITCH_NETNS)  # from here on, new sockets belong to the lab
    me = proc.read_process(os.getpid())
    assert me is not None
    record = _record_path(paths, local_port)

    def _term(_sig: int, _frame: FrameType | None) -> None:
        record.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, _term)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps({"pid": me.pid, "starttime": me.starttime, "local_port": local_port,
                               "target": f"{address}:{port}", "owner": owner,
                               "started": time.time()}))
    os.replace(tmp, record)
    while True:
        client, _peer = listener.accept()
        threading.Thread(target=_relay, args=(client, address, port), daemon=True).start()
