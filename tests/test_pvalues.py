"""p-values of confidence claims: each inverts the interval the claim is judged by, so
``p ≤ (1 − C)/2`` exactly when the C% interval clears the bound; checked against scipy's score
test and Wilson intervals, and against the resampled means of the seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from interp_assert.claims.compare import judged_value
from interp_assert.claims.outcome import compare
from interp_assert.evaluate.pvalues import bootstrap_p, p_from_e_value, p_value_for, wilson_p
from interp_assert.evaluate.stats import BOOTSTRAP_RESAMPLES, bootstrap_mean, wilson
from interp_assert.language.ast import Comparison, Number

LEVELS = (0.8, 0.9, 0.95, 0.99)


def comparison(op: str, level: float, bound: float, upper: float | None = None) -> Comparison:
    return Comparison(op, Number(bound), Number(upper) if upper is not None else None, level)


def clears(interval: tuple[float, float], op: str, level: float, bound: float,
           upper: float | None = None) -> bool:
    """The verdict of a confidence claim, decided as claims/compare.py decides it."""
    cmp = comparison(op, level, bound, upper)
    judged = judged_value(float("nan"), interval, cmp)
    if isinstance(judged, tuple):
        return all(compare(v, cmp, bound, upper) for v in judged)
    return compare(judged, cmp, bound, upper)


@pytest.mark.parametrize(("k", "n", "b"), [(995, 1000, 0.99), (990, 1000, 0.98), (37, 50, 0.6),
                                           (3, 10, 0.1), (10, 10, 0.75), (0, 20, 0.05)])
def test_wilson_p_is_scipy_score_test_and_inverts_scipy_wilson(k: int, n: int, b: float) -> None:
    p = wilson_p(k, n, ">=", b)
    z = (k / n - b) / math.sqrt(b * (1 - b) / n)
    assert p == pytest.approx(scipy_stats.norm.sf(z), rel=1e-12, abs=1e-300)
    assert wilson_p(k, n, "<=", b) == pytest.approx(scipy_stats.norm.cdf(z), rel=1e-12)
    if 1e-12 < p < 0.5:  # the two-sided (1 - 2p) Wilson interval ends exactly on the bound
        ci = scipy_stats.binomtest(k, n).proportion_ci(1 - 2 * p, method="wilson")
        assert ci.low == pytest.approx(b, abs=1e-9)


def test_wilson_p_corresponds_to_the_interval_on_many_fixed_cases() -> None:
    rng = np.random.default_rng(19)
    checked = 0
    for _ in range(3000):
        n = int(rng.integers(1, 2000))
        k = int(rng.integers(0, n + 1))
        op = str(rng.choice([">=", ">", "<=", "<", "in", "≈"]))
        level = float(rng.choice(LEVELS))
        centre = k / n + rng.normal(0, 2 / math.sqrt(n))
        bound, upper = float(np.clip(centre, -0.1, 1.1)), None
        if op == "in":
            bound, upper = sorted([bound, float(np.clip(centre + abs(rng.normal(0, 0.2)),
                                                        -0.1, 1.1))])
        elif op == "≈":
            upper = float(abs(rng.normal(0, 0.1)))
        p = wilson_p(k, n, op, bound, upper)
        if abs(p - (1 - level) / 2) < 1e-9:
            continue  # a tie: floating point decides it either way
        held = clears(wilson(k, n, level), op, level, bound, upper)
        assert (p <= (1 - level) / 2) == held, (k, n, op, level, bound, upper, p)
        checked += 1
    assert checked > 2900


def reference_means(samples: np.ndarray) -> np.ndarray:
    """The seeded resampling written out again: generator seed 0, 250 resamples a draw."""
    rng = np.random.default_rng(0)
    chunks = [samples[rng.integers(0, samples.size, size=(250, samples.size))].mean(axis=1)
              for _ in range(BOOTSTRAP_RESAMPLES // 250)]
    return np.concatenate(chunks)


def test_bootstrap_p_is_the_fraction_of_resampled_means_below_the_bound() -> None:
    samples = np.random.default_rng(5).normal(0.3, 1.0, 200)
    means = reference_means(samples)
    for bound in (0.1, 0.2, 0.25, 0.3, 0.45):
        p = bootstrap_p(samples, ">=", bound)
        assert abs(p - np.mean(means < bound)) <= 1 / (means.size - 1)
        assert abs(bootstrap_p(samples, "<=", bound) - np.mean(means > bound)) <= 1 / (
            means.size - 1)
        if 0 < p < 0.5:  # the (1 - 2p) percentile interval ends exactly on the bound
            assert np.quantile(means, p) == pytest.approx(bound, abs=1e-12)
            assert bootstrap_mean(samples, 1 - 2 * p)[0] == pytest.approx(bound, abs=1e-12)


def test_bootstrap_p_corresponds_to_the_interval_on_many_fixed_cases() -> None:
    rng = np.random.default_rng(7)
    checked = 0
    for case in range(40):
        samples = (rng.integers(0, 2, size=int(rng.integers(5, 60))).astype(float)
                   if case % 4 == 0 else rng.normal(rng.normal(), 1.0, int(rng.integers(5, 300))))
        mean, spread = samples.mean(), samples.std() / math.sqrt(samples.size) + 1e-3
        for _ in range(40):
            op = str(rng.choice([">=", ">", "<=", "<", "in", "≈"]))
            level = float(rng.choice(LEVELS))
            bound = float(mean + rng.normal(0, 3 * spread))
            if case % 4 == 0 and rng.random() < 0.3:
                bound = float(np.round(bound * samples.size) / samples.size)  # on a mean
            upper = None
            if op == "in":
                bound, upper = sorted([bound, float(mean + rng.normal(0, 3 * spread))])
            elif op == "≈":
                upper = float(abs(rng.normal(0, 3 * spread)))
            p = bootstrap_p(samples, op, bound, upper)
            if abs(p - (1 - level) / 2) < 1e-9:
                continue
            held = clears(bootstrap_mean(samples, level), op, level, bound, upper)
            assert (p <= (1 - level) / 2) == held, (case, op, level, bound, upper, p)
            checked += 1
    assert checked > 1500


def test_two_sided_bounds_take_the_larger_one_sided_p_value() -> None:
    assert wilson_p(90, 100, "in", 0.8, 0.95) == max(wilson_p(90, 100, ">=", 0.8),
                                                     wilson_p(90, 100, "<=", 0.95))
    samples = np.linspace(0, 1, 50)
    assert bootstrap_p(samples, "≈", 0.5, 0.1) == max(bootstrap_p(samples, ">=", 0.4),
                                                      bootstrap_p(samples, "<=", 0.6))


def test_metadata_chooses_the_method_and_nan_never_passes() -> None:
    assert p_value_for({"successes": np.array([9]), "trials": np.array([10])}, ">=", 0.5) == \
        wilson_p(9, 10, ">=", 0.5)
    samples = np.arange(10.0)
    assert p_value_for({"samples": samples}, "<", 7) == bootstrap_p(samples, "<", 7)
    assert p_value_for({}, ">=", 0.5) is None
    assert p_value_for({"samples": samples}, "==", 4.5) is None
    assert wilson_p(9, 10, ">=", float("nan")) == 1.0
    assert wilson_p(0, 0, ">=", 0.5) == 1.0
    assert bootstrap_p(np.array([1.0, float("nan")]), ">=", 0.0) == 1.0
    assert bootstrap_p(np.array([]), ">=", 0.0) == 1.0
    assert wilson_p(5, 10, ">=", 0.0) == 0.0 and wilson_p(10, 10, ">=", 1.0) == 1.0
    assert wilson_p(10, 10, "<=", 1.0) == 0.0 and wilson_p(10, 10, "<", 1.0) == 1.0


def test_p_value_of_an_e_process() -> None:
    assert p_from_e_value(40.0) == 0.025
    assert p_from_e_value(0.5) == 1.0 and p_from_e_value(float("nan")) == 1.0


def test_unit_bootstrap_p_corresponds_to_its_interval() -> None:
    """Paired effects, ratios of sums over sequences and statistics of pooled samples: the
    p-value inverts the same seeded percentile interval (``intervals.interval_of``)."""
    from interp_assert.evaluate.intervals import interval_of

    rng = np.random.default_rng(11)
    checked = 0
    for case in range(24):
        n = int(rng.integers(8, 80))
        before = rng.normal(2.0, 1.0, n)
        metas = [
            {"paired": (before, before - rng.normal(0.5, 1.0, n)), "change": "drops"},
            {"clusters": (rng.uniform(0, 5, n), rng.integers(1, 6, n).astype(float))},
            {"statistic": "std", "samples": rng.normal(0, 2, 4 * n), "unit_rows": 4,
             "statistic_options": {"ddof": 1}},
        ]
        meta = metas[case % 3]
        centre = interval_of(meta, 0.5)
        width = interval_of(meta, 0.99)
        assert centre is not None and width is not None
        for _ in range(30):
            op = str(rng.choice([">=", "<=", "in"]))
            level = float(rng.choice(LEVELS))
            bound = float(rng.uniform(width[0] - 0.2 * (width[1] - width[0]), width[1]))
            upper = float(rng.uniform(bound, width[1] + 0.5)) if op == "in" else None
            p = p_value_for(meta, op, bound, upper)
            assert p is not None
            if abs(p - (1 - level) / 2) < 1e-9:
                continue
            held = clears(interval_of(meta, level), op, level, bound, upper)
            assert (p <= (1 - level) / 2) == held, (case, op, level, bound, upper, p)
            checked += 1
    assert checked > 600
