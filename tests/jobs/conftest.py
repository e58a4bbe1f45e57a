"""A real Consul and a real Nomad, in -dev mode on loopback, for the tests of Nomad jobs.

Both agents bind 127.0.0.1 only, on free ports (nothing collides with a lab forward on
8500/4646), with update checks and Nomad's cloud fingerprinters off: no traffic leaves
loopback. Nomad registers services in this Consul, whose agent runs their HTTP checks, so
deployments get healthy exactly as on the cluster. Needs root (the Nomad client runs tasks)
and the toolchain's binaries (`python3 -m toolchain ensure`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolchain.api import installed
from toolchain.errors import ToolchainError

from ..waiting import wait_until

# Guards against a hang, generous for a busy host: the agents are usually up in seconds.
START_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0


@dataclass
class DevAgents:
    """Addresses of the running agents and where their logs go."""

    nomad: str
    consul: str
    logs: Path

    def get(self, url: str) -> Any:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:])
                         for log in sorted(self.logs.glob("*.log")))


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now, on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def binary(tool: str) -> str:
    try:
        return str(installed(tool).path)
    except ToolchainError as err:
        pytest.fail(f"{err} (`./run test` provides the toolchain)")


def consul_config(http: int, serf: int, server: int) -> str:
    return f"""disable_update_check = true
ports {{
  http     = {http}
  dns      = -1
  grpc     = -1
  grpc_tls = -1
  serf_lan = {serf}
  serf_wan = -1
  server   = {server}
}}
"""


def nomad_config(http: int, rpc: int, serf: int, consul: str) -> str:
    return f"""disable_update_check = true
ports {{
  http = {http}
  rpc  = {rpc}
  serf = {serf}
}}
consul {{
  address = "{consul}"
}}
client {{
  options {{
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.denylist"      = "docker,qemu,java"
  }}
}}
plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
"""


def wait_for(what: str, ready: Callable[[], bool], agents: DevAgents,
             timeout: float = START_TIMEOUT) -> None:
    wait_until(f"{what} ready", ready, timeout=timeout, poll=0.3, ignore=(OSError,),
               state=lambda: "\n" + agents.log_tail())


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a dev agent then stops its tasks), then SIGKILL for whatever of it is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # its session: task processes left behind
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def dev_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevAgents]:
    if os.geteuid() != 0:
        pytest.fail("these tests run a Nomad client, which needs root: run them as root")
    consul_bin, nomad_bin = binary("consul"), binary("nomad")
    base = tmp_path_factory.mktemp("dev-agents")
    c_http, c_serf, c_server, n_http, n_rpc, n_serf = free_ports(6)
    (base / "consul.hcl").write_text(consul_config(c_http, c_serf, c_server))
    (base / "nomad.hcl").write_text(
        nomad_config(n_http, n_rpc, n_serf, f"127.0.0.1:{c_http}"))
    agents = DevAgents(f"http://127.0.0.1:{n_http}", f"http://127.0.0.1:{c_http}", base)
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: str) -> None:
        with open(base / log, "wb") as out:
            procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))

    try:
        start([consul_bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
               "-config-file", str(base / "consul.hcl"), "-data-dir", str(base / "consul")],
              "consul.log")
        wait_for("consul", lambda: bool(agents.get(f"{agents.consul}/v1/status/leader")), agents)
        start([nomad_bin, "agent", "-dev", "-bind", "127.0.0.1", "-config", str(base / "nomad.hcl"),
               "-data-dir", str(base / "nomad")], "nomad.log")

        def nomad_ready() -> bool:
            nodes = agents.get(f"{agents.nomad}/v1/nodes")
            return any(n["Status"] == "ready" and (n.get("Drivers") or {}).get("raw_exec", {})
                       .get("Healthy") for n in nodes)

        wait_for("nomad (a ready client with raw_exec)", nomad_ready, agents)
        yield agents
    finally:
        for proc in reversed(procs):
            stop(proc)
