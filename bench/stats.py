"""Pure: percentiles, medians and the min/median/max summary of repeated measurements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of VALUES, interpolated linearly between the two closest
    ranks (numpy's default method): percentile([1, 2, 3, 4], 50) == 2.5."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in 0..100, got {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median: the mean of the two middle values when their number is even."""
    return percentile(values, 50)


@dataclass(frozen=True)
class Summary:
    """Repeated measurements of one figure: their median, smallest and largest value."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """The summary of VALUES (at least one)."""
        if not values:
            raise ValueError("a summary needs at least one value")
        return cls(median=median(values), low=min(values), high=max(values), runs=len(values))
