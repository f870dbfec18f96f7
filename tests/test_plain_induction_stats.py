"""The plain induction mirror's bootstrap (bench/plain/induction_stats.py) against scipy's
percentile bootstrap with the documented seed and blocks, and its p-value against its own
interval (p ≤ 2.5% exactly when the 95% interval clears the bound)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from bench.plain import induction_stats as plain


def scipy_interval(data: list[np.ndarray], statistic) -> tuple[float, float]:
    result = sp.bootstrap(data, statistic, n_resamples=2000, batch=250, paired=True,
                          vectorized=True, method="percentile",
                          rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    before = rng.normal(2.0, 1.0, 60)
    return before, before - rng.normal(1.5, 0.5, 60), rng.normal(0.2, 0.3, 60)


def test_intervals_are_scipys(arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    before, after, source = arrays
    cases = [
        (plain.means(before), [before], lambda x, axis: x.mean(axis)),
        (plain.ratios(before, source ** 2 + 1), [before, source ** 2 + 1],
         lambda a, b, axis: a.sum(axis) / b.sum(axis)),
        (plain.drops(before, after), [before, after],
         lambda a, b, axis: a.mean(axis) - b.mean(axis)),
        (plain.recoveries(before, after, source), [before, after, source],
         lambda a, b, c, axis: (b.mean(axis) - a.mean(axis)) / (c.mean(axis) - a.mean(axis))),
    ]
    for resampled, data, statistic in cases:
        assert plain.interval(resampled) == pytest.approx(scipy_interval(data, statistic),
                                                          rel=1e-12)


def test_p_value_inverts_the_interval(arrays: tuple[np.ndarray, ...]) -> None:
    before, after, _ = arrays
    resampled = plain.drops(before, after)
    low, _ = plain.interval(resampled)
    for bound in np.linspace(low - 0.3, low + 0.3, 60):  # never exactly on the end (a tie)
        assert (plain.p_at_least(resampled, bound) <= 0.025) == (low >= bound)
    assert plain.p_at_least(resampled, resampled.min() - 1) == 0.0
    assert plain.p_at_least(resampled, resampled.max() + 1) == 1.0


def test_rank_p_counts_ties_against_the_claim() -> None:
    assert plain.rank_p(0.5, [0.1, 0.5, 0.7]) == 3 / 4
    assert plain.rank_p(0.9, [0.1] * 9) == 1 / 10
