"""bench/loadgen.py: targets, results, and a short run against a server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench import probe
from bench.loadgen import LoadError, LoadResult, Target, run


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


def test_results_hold_percentiles_in_milliseconds() -> None:
    result = LoadResult.of("u", seconds=2.0, concurrency=4, latencies=[0.001 * i for i in range(1, 101)],
                           errors=3)
    assert result.served == 100 and result.rps == 50.0
    assert result.p50_ms == pytest.approx(50.5) and result.p99_ms == pytest.approx(99.01)
    assert result.max_ms == pytest.approx(100.0)
    assert result.as_dict()["errors"] == 3


def test_no_served_request_means_no_percentiles() -> None:
    result = LoadResult.of("u", seconds=1.0, concurrency=1, latencies=[], errors=5)
    assert (result.rps, result.p50_ms, result.max_ms) == (0.0, None, None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 503
        body = b'{"instance": "local"}\n'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_short_run_counts_served_requests(server: str) -> None:
    result = run(f"{server}/ok", seconds=0.3, concurrency=2, warmup=0.1)
    assert result.served > 0 and result.errors == 0
    assert result.p50_ms is not None and result.concurrency == 2


def test_answers_other_than_200_are_errors(server: str) -> None:
    result = run(f"{server}/missing", seconds=0.2, concurrency=1, warmup=0.0)
    assert result.served == 0 and result.errors > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(LoadError, match="positive"):
        run("http://127.0.0.1:1/", seconds=0, concurrency=1)


def test_errors_are_counted_by_kind(server: str) -> None:
    result = run(f"{server}/missing", seconds=0.2, concurrency=1, warmup=0.0)
    assert set(result.error_kinds) == {"HTTP 503"} and result.error_kinds["HTTP 503"] == result.errors


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
