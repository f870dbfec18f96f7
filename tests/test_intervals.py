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


def test_bootstrap_index_draws_are_reused_and_equal_fresh_draws() -> None:
    """The resampled means read index draws kept per (sample count, resamples): they equal
    the documented draws made afresh (blocks of 250 from default_rng(0)), bit for bit, for
    counts that are kept, evicted and too large to keep."""
    import numpy as np

    from interp_assert.evaluate import stats

    def fresh(samples: np.ndarray, resamples: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        blocks = [samples[rng.integers(0, samples.size,
                                       size=(min(resamples, s + 250) - s, samples.size))]
                  .mean(axis=1) for s in range(0, resamples, 250)]
        return np.concatenate(blocks)

    rng = np.random.default_rng(11)
    sizes = [(40, 2000), (3, 999), (40, 2000), *[(n, 300) for n in range(5, 11)],
             (stats.INDEX_CACHE_CELLS // 2000 + 1, 2000)]
    for count, resamples in sizes:
        samples = rng.standard_normal(count)
        assert np.array_equal(stats.resampled_means(samples, resamples),
                              fresh(samples, resamples)), (count, resamples)
    assert len(stats._INDICES) <= stats.INDEX_CACHE_PAIRS
    assert all(not kept.flags.writeable for kept in stats._INDICES.values())
