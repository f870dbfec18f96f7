"""Validity by simulation of the confidence sequences that sequential attention and effect
claims use: with the true mean exactly on the bound, a ``≥ bound`` claim passes at some
checked time at most alpha of the time over 1,000 seeded streams. The asymptotic sequence is
valid only asymptotically, so it is checked at every time from MIN_SAMPLES on, with a
light-tailed and a skewed distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp_assert.evaluate.asymptotic_cs import (
    MIN_SAMPLES,
    AsymptoticCS,
    asymptotic_p_value,
    half_width,
    rho_for,
    running_bounds,
)
from interp_assert.evaluate.sequential import BettingCS

RUNS = 1000
ALPHA = 0.05


def false_pass_rate(streams: np.ndarray, bound: float, alpha: float = ALPHA) -> float:
    """Share of streams (rows) whose asymptotic sequence's lower end reaches the bound at some
    time from MIN_SAMPLES on (a ``≥ bound`` claim holding), all times at once with numpy."""
    n = streams.shape[1]
    t = np.arange(1, n + 1, dtype=np.float64)
    mean = np.cumsum(streams, axis=1) / t
    var = np.maximum(np.cumsum(streams * streams, axis=1) / t - mean * mean, 0.0)
    lower = mean - half_width(np.sqrt(var), t, alpha, rho_for(alpha, n))
    return float((lower[:, MIN_SAMPLES - 1:] >= bound).any(axis=1).mean())


@pytest.mark.parametrize(("name", "draw", "limit"), [
    # measured: normal 0.011, exponential mirrored (skewed left, the hard side for >=) 0.021
    ("normal", lambda rng, shape: rng.standard_normal(shape), ALPHA),
    ("skewed", lambda rng, shape: 1.0 - rng.exponential(1.0, shape), ALPHA),
])
def test_asymptotic_false_pass_rate_at_most_alpha(name: str, draw, limit: float) -> None:
    rng = np.random.default_rng(20261130)
    streams = draw(rng, (RUNS, 2000))  # true mean 0 in both
    rate = false_pass_rate(streams, 0.0)
    assert rate <= limit, f"{name}: {rate}"
    assert rate > 0 or name == "normal"  # the check can fail: the skewed side does pass some


def test_asymptotic_sequence_matches_the_formula_and_its_incremental_form() -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 1.5, 300)
    cs = AsymptoticCS(0.05, 300)
    for start in range(0, 300, 37):  # uneven batches: Welford's update
        cs.update(x[start:start + 37])
    t = 300
    mean, sd = float(np.mean(x)), float(np.std(x))
    rho2 = (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / 300
    width = sd * math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2)
                           * math.log(math.sqrt(t * rho2 + 1) / 0.05))
    low, high = cs.bounds()
    assert abs(low - (mean - width)) <= 1e-10 and abs(high - (mean + width)) <= 1e-10
    lows, highs = running_bounds(x, 0.05, 300)
    assert abs(lows[-1] - low) <= 1e-10 and abs(highs[-1] - high) <= 1e-10
    assert np.isinf(lows[:MIN_SAMPLES - 1]).all()
    assert AsymptoticCS(0.05, 300).update(x[:MIN_SAMPLES - 1]).bounds() == (-math.inf, math.inf)


def test_asymptotic_p_value_is_at_most_half_alpha_exactly_when_the_sequence_clears() -> None:
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.05, 0.1, 0.2, 0.4):
        x = rng.standard_normal(400) + shift
        lows, _ = running_bounds(x, 0.05, 400)
        cleared = bool((lows[MIN_SAMPLES - 1:] > 0.0).any())
        p = asymptotic_p_value(x, 0.05, 400, ">=", 0.0)
        assert (p <= 0.05 / 2 + 1e-12) == cleared, (shift, p)


def test_attention_scores_false_pass_rate() -> None:
    """Per-sample attention scores: means over 1 to 5 (sample, query) pairs, each pair's
    weight on its target 1 with probability 0.7 (else 0); the betting sequence on them, true
    mean on the bound (measured 0.009)."""
    rng = np.random.default_rng(11)
    passes = 0
    bound = 0.7  # each pair puts all its weight on the target with probability 0.7
    for _ in range(RUNS):
        pairs = rng.integers(1, 6, 200)
        scores = rng.binomial(pairs, 0.7) / pairs
        # grid of tenths: the bound is a candidate, and the lower end reaches it only once
        # the bound itself is excluded (as on the full grid)
        low, _ = BettingCS(ALPHA, grid=10).update(scores).bounds()
        passes += low >= bound
    rate = passes / RUNS
    assert rate <= ALPHA, rate
