#!/usr/bin/env python3
"""fib: a small HTTP service that computes Fibonacci numbers (Python 3 standard library only).

    GET /fib/<n>, GET /fib?n=<n>   -> {"n": n, "fib": F(n), "instance": ..., "host": ...}
    GET /<n>, GET /?n=<n>          the same, for a proxy that strips the /fib/ prefix
    GET /health, GET /fib/health   -> {"status": "ok", "instance": ...}

n is an integer in 0..MAX_N; anything else is a 400. The service listens on
$NOMAD_IP_http:$NOMAD_PORT_http when Nomad runs it ($FIB_BIND and $FIB_PORT take precedence;
defaults 127.0.0.1:8080), logs one line per request to stdout, and stops cleanly on SIGTERM
or SIGINT.

The source of truth for the job files: `python3 jobs/build.py` embeds this file in
jobs/fib.nomad.hcl and jobs/fib-docker.nomad.hcl. Edit this file, then run it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_N = 10000
PREFIX = "/fib"
USAGE = f"GET /fib/<n> or /fib?n=<n> with n an integer in 0..{MAX_N}"


def fib(n: int) -> int:
    """F(n) computed iteratively: F(0) = 0, F(1) = 1, F(n) = F(n-1) + F(n-2)."""
    if n < 0:
        raise ValueError("n must not be negative")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@dataclass(frozen=True)
class Reply:
    """What to answer: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def parse_n(text: str) -> int:
    """n from its text form; ValueError with a message fit for the client when it is bad."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"n must be an integer in 0..{MAX_N}, got {text[:40]!r}")
    n = int(text) if len(text) <= len(str(MAX_N)) else MAX_N + 1
    if n > MAX_N:
        raise ValueError(f"n must be at most {MAX_N}, got {text[:40]}")
    return n


def route(target: str, instance: str, host: str) -> Reply:
    """The reply to `GET target` (path and query), with or without the /fib prefix."""
    parts = urlsplit(target)
    path = parts.path.rstrip("/") or "/"
    if path == PREFIX or path.startswith(PREFIX + "/"):
        path = path[len(PREFIX):] or "/"
    if path == "/health":
        return Reply(200, {"status": "ok", "instance": instance})
    if path == "/":
        query = parse_qs(parts.query, keep_blank_values=True)
        if "n" not in query:
            return Reply(200, {"service": "fib", "usage": USAGE, "instance": instance,
                               "host": host})
        text = query["n"][-1]
    elif path.count("/") == 1:
        text = path[1:]
    else:
        return Reply(404, {"error": f"no such path: {parts.path} ({USAGE})"})
    try:
        n = parse_n(text)
    except ValueError as err:
        return Reply(400, {"error": str(err)})
    return Reply(200, {"n": n, "fib": fib(n), "instance": instance, "host": host})


def listen_address(env: dict[str, str]) -> tuple[str, int]:
    """Where to listen: FIB_BIND/FIB_PORT, else Nomad's NOMAD_IP_http/NOMAD_PORT_http."""
    bind = env.get("FIB_BIND") or env.get("NOMAD_IP_http") or "127.0.0.1"
    port = env.get("FIB_PORT") or env.get("NOMAD_PORT_http") or "8080"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"fib: the port must be an integer in 1..65535, got {port!r}")
    return bind, int(port)


def instance_name(env: dict[str, str], host: str, port: int) -> str:
    """Which copy answers: Nomad's allocation ID, else host:port."""
    return env.get("NOMAD_ALLOC_ID") or f"{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    """Serves `route` as JSON; one log line per request on stdout."""

    server_version = "fib/1"
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (about 40 ms a request on a kept-alive connection).
    disable_nagle_algorithm = True
    instance = ""
    host = ""

    def do_GET(self) -> None:
        started = time.monotonic()
        reply = route(self.path, self.instance, self.host)
        body = (json.dumps(reply.body) + "\n").encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        took = (time.monotonic() - started) * 1000
        print(f'{self.client_address[0]} "GET {self.path}" {reply.status} {len(body)} {took:.1f}ms',
              flush=True)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by do_GET, with the time they took."""

    def log_message(self, format: str, *args: Any) -> None:
        """Other messages of http.server (bad requests, unsupported methods), on stdout."""
        print(f"{self.client_address[0]} {format % args}", flush=True)


class Server(ThreadingHTTPServer):
    # listen(2) backlog: http.server's default of 5 drops connections when the load balancer
    # opens many at once, and a dropped SYN costs the client a retransmit (1 s or more).
    request_queue_size = 128


def serve(env: dict[str, str]) -> None:
    """Serve until SIGTERM or SIGINT, then close the socket and return."""
    bind, port = listen_address(env)
    Handler.host = socket.gethostname()
    Handler.instance = instance_name(env, Handler.host, port)
    server = Server((bind, port), Handler)
    server.daemon_threads = True

    def stop(signum: int, _frame: object) -> None:
        print(f"fib: {signal.Signals(signum).name}, shutting down", flush=True)
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"fib: instance {Handler.instance} listening on http://{bind}:{port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("fib: stopped", flush=True)


if __name__ == "__main__":
    serve(dict(os.environ))
