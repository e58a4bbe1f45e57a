"""Where the benchmark's requests go (bench/target.py), its probes (bench/probe.py) and wrk
(bench/wrk.py, the real `wrk`) against HTTP servers on loopback."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench import probe, wrk
from bench.target import LoadError, Target


@pytest.mark.parametrize(("url", "target"), [
    ("http://10.210.4.20/fib/10", Target("10.210.4.20", 80, "/fib/10")),
    ("http://10.210.4.31:25527/fib/10", Target("10.210.4.31", 25527, "/fib/10")),
    ("http://127.0.0.1:8080", Target("127.0.0.1", 8080, "/")),
    ("http://10.210.4.10:8500/v1/health/service/fib?passing=1",
     Target("10.210.4.10", 8500, "/v1/health/service/fib?passing=1")),
])
def test_lab_and_loopback_urls_are_targets(url: str, target: Target) -> None:
    assert Target.parse(url) == target


@pytest.mark.parametrize(("url", "message"), [
    ("http://192.168.1.20/fib/10", "neither a lab address"),
    ("http://example.org/", "neither a lab address"),
    ("http://10.211.0.1/", "neither a lab address"),
    ("https://10.210.4.20/", "not an http://"),
    ("10.210.4.20/fib", "not an http://"),
])
def test_anything_else_is_refused(url: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        Target.parse(url)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: Counter[str]  # requests by path, per server

    def do_GET(self) -> None:
        self.seen[self.path] += 1
        status = 200 if self.path == "/ok" else 503
        body = b'{"instance": "local"}\n'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving() -> Iterator[tuple[str, Counter[str]]]:
    """An HTTP server on loopback: its URL and the requests it saw by path."""
    seen: Counter[str] = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("CountingHandler", (Handler,), {"seen": seen}))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    with serving() as (url, _):
        yield url


@pytest.fixture
def servers() -> Iterator[list[tuple[str, Counter[str]]]]:
    with serving() as first, serving() as second:
        yield [first, second]


def test_wrk_counts_answers_and_latencies(server: str) -> None:
    result = wrk.run(f"{server}/ok", seconds=1, threads=2, connections=4)
    assert result.requests > 0 and result.failed == 0 and result.rps > 0
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert (result.threads, result.connections) == (2, 4)


def test_wrk_counts_answers_other_than_2xx_as_failed(server: str) -> None:
    result = wrk.run(f"{server}/missing", seconds=1, threads=1, connections=1)
    assert result.errors["status"] == result.requests > 0 and result.failed == result.requests


def test_wrk_spreads_its_threads_over_the_addresses(servers: list[tuple[str, Counter[str]]]) -> None:
    (first, first_seen), (second, second_seen) = servers
    spread = [first.removeprefix("http://"), second.removeprefix("http://")]
    result = wrk.run(f"{first}/ok", seconds=1, threads=2, connections=2, spread=spread)
    assert result.failed == 0 and result.spread == tuple(spread)
    assert first_seen["/ok"] > 0 and second_seen["/ok"] > 0
    assert first_seen["/ok"] + second_seen["/ok"] >= result.requests


def test_wrk_goes_nowhere_outside_the_lab() -> None:
    with pytest.raises(LoadError, match="neither a lab address"):
        wrk.command("http://192.0.2.1/", 1, 1, 1)
    with pytest.raises(LoadError, match="neither a lab address"):
        wrk.spread_env(["10.210.4.31:2000", "192.0.2.1:80"])
    with pytest.raises(LoadError, match="split evenly"):
        wrk.command("http://10.210.4.20/", 1, 3, 8)


@pytest.mark.parametrize(("concurrency", "threads", "connections"),
                         [(8, 3, 9), (8, 4, 8), (1, 3, 3), (10, 3, 9)])
def test_connections_split_evenly_over_the_threads(concurrency: int, threads: int, connections: int) -> None:
    assert wrk.connections_for(concurrency, threads) == connections


def test_probes_go_straight_to_the_address_never_through_a_proxy(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "")
    answer = probe.request(f"{server}/ok")
    assert (answer.status, answer.json()) == (200, {"instance": "local"})
    waited = probe.wait_for(f"{server}/ok", timeout=5, contains="local")
    assert waited.ok and waited.tries == 1


def test_a_probe_reports_the_last_answer_when_it_gives_up(server: str) -> None:
    waited = probe.wait_for(f"{server}/missing", timeout=0, interval=0)
    assert not waited.ok and waited.answer.status == 503
