"""bench/failover.py: the figures of one failover, from the samples of the poller."""

from __future__ import annotations

import pytest

from bench.failover import Sample, analyse, instance_of

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
