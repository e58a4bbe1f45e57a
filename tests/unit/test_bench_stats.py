"""bench/stats.py: percentiles, medians and summaries."""

from __future__ import annotations

import pytest

from bench.stats import Summary, median, percentile


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.5], 0) == percentile([7.5], 99) == 7.5


@pytest.mark.parametrize(("values", "p", "message"), [
    ([], 50, "no values"),
    ([1.0], -1, "0..100"),
    ([1.0], 100.5, "0..100"),
])
def test_percentile_refuses_what_has_none(values: list[float], p: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        percentile(values, p)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5


def test_summary_keeps_median_min_max_and_the_number_of_runs() -> None:
    assert Summary.of([70.1, 68.2, 75.0]) == Summary(median=70.1, low=68.2, high=75.0, runs=3)
    with pytest.raises(ValueError, match="at least one"):
        Summary.of([])
