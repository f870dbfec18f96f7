"""Interval methods against scipy's own: Wilson score intervals for rates, and the seeded
percentile bootstrap for means."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from interp_assert.evaluate.stats import bootstrap_mean, wilson


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (997, 1000), (50, 50),
                                                   (1, 2)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(successes: int, trials: int, level: float) -> None:
    expected = scipy_stats.binomtest(successes, trials).proportion_ci(level, method="wilson")
    low, high = wilson(successes, trials, level)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    if successes == 0:
        assert low == 0.0  # exactly, not a rounding residue such as 2e-19
    if successes == trials:
        assert high == 1.0


def test_bootstrap_is_a_percentile_interval_of_resampled_means() -> None:
    samples = np.random.default_rng(3).normal(1.0, 2.0, 400)
    low, high = bootstrap_mean(samples)
    reference = scipy_stats.bootstrap((samples,), np.mean, n_resamples=20000, method="percentile",
                                      random_state=np.random.default_rng(0))
    # two seeded percentile bootstraps of the same data agree to their Monte Carlo error
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.03)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.03)
    assert low < samples.mean() < high
    assert bootstrap_mean(samples) == (low, high)  # seeded: the same interval every time
