"""bench/failover.py: the figures of one failover, from the samples of the poller."""

from __future__ import annotations

import socket
import threading

import pytest

from bench import failover
from bench.failover import Sample, analyse, instance_of
from bench.target import Target
from tests.waiting import wait_until

VICTIM, A, B, NEW = "victim", "a", "b", "new"
KNOWN = frozenset({VICTIM, A, B})


def answers(*spec: tuple[float, str | None, int]) -> list[Sample]:
    """Samples that took 10 ms each: (answered at, instance, status)."""
    return [Sample(done - 0.01, done, status, instance) for done, instance, status in spec]


def test_figures_count_from_the_stop() -> None:
    samples = answers((9.0, VICTIM, 200), (9.9, A, 200),  # before the stop at 10.0
                      (10.02, VICTIM, 200), (10.1, None, 502), (10.3, B, 200),
                      (10.5, None, 0), (12.0, NEW, 200), (12.1, A, 200))
    result = analyse(samples, stopped_at=10.0, victim=VICTIM, known=KNOWN)
    assert result.requests == 6
    assert result.victim_last == pytest.approx(0.02)
    assert result.errors == 2 and result.last_error == pytest.approx(0.5)
    assert result.replacement_first == pytest.approx(2.0)
    assert result.error_kinds == {"HTTP 0": 1, "HTTP 502": 1}
    assert result.slowest_ms == pytest.approx(10.0)


def test_a_clean_failover_has_zeros_and_names_exceptions() -> None:
    samples = answers((9.5, VICTIM, 200), (10.1, A, 200), (10.4, B, 200))
    samples.append(Sample(10.5, 10.9, 0, None, "RemoteDisconnected"))
    result = analyse(samples, stopped_at=10.0, victim=VICTIM, known=KNOWN)
    assert result.victim_last == 0.0
    assert result.errors == 1 and result.error_kinds == {"RemoteDisconnected": 1}
    assert result.replacement_first is None
    assert result.slowest_ms == pytest.approx(400.0)


def test_nothing_after_the_stop() -> None:
    result = analyse(answers((9.0, A, 200)), stopped_at=10.0, victim=VICTIM, known=KNOWN)
    assert (result.requests, result.errors, result.slowest_ms) == (0, 0, None)
    assert result.as_dict()["replacement_first_s"] is None


def test_a_200_without_an_instance_is_a_failure() -> None:
    assert Sample(0.0, 0.1, 200, None).failed
    assert not Sample(0.0, 0.1, 200, A).failed


@pytest.mark.parametrize(("body", "instance"), [
    (b'{"n": 10, "fib": 55, "instance": "0760-29", "host": "client1.demo"}\n', "0760-29"),
    (b'{"n": 10}', None),
    (b'{"instance": 3}', None),
    (b"no healthy instance of fib\n", None),
    (b"[1, 2]", None),
])
def test_instance_of_reads_fib_answers(body: bytes, instance: str | None) -> None:
    assert instance_of(body) == instance


class OneAnswerPerConnection:
    """A server on loopback that answers one GET on each connection as if keeping it alive
    (no `Connection: close`), then closes it: what a reloading nginx does to idle connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.answered = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """No more listening (shutdown wakes the accept that close alone would leave waiting)."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.sock.getsockname()[1], "/fib/10")

    def serve(self) -> None:
        body = b'{"instance": "a"}'
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                if request:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    self.answered += 1


def test_a_get_on_a_kept_alive_connection_closed_under_it_is_sent_again_not_failed() -> None:
    server = OneAnswerPerConnection()
    poller = failover.Poller(server.target)
    poller.start()
    try:
        wait_until("ten answers through connections that close after one", lambda: len(poller.samples) >= 10)
    finally:
        poller.stop()
        server.stop()
    samples = poller.samples
    assert [s for s in samples if s.failed] == []
    assert sum(s.retried for s in samples) >= len(samples) - 2  # all but the first (and one cut short)
    assert server.answered >= len(samples)  # none was answered twice for one sample
    result = failover.analyse(samples, samples[0].sent, "b", frozenset({"a"}))
    assert (result.errors, result.retried) == (0, sum(s.retried for s in samples))


def test_a_get_that_fails_again_on_a_new_connection_is_failed() -> None:
    server = OneAnswerPerConnection()
    target = server.target
    server.stop()  # nobody listens: every GET fails on a new connection
    poller = failover.Poller(target)
    poller.start()
    try:
        wait_until("three failed samples", lambda: len(poller.samples) >= 3)
    finally:
        poller.stop()
    assert {(s.failed, s.error) for s in poller.samples} == {(True, "ConnectionRefusedError")}
