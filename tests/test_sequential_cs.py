"""The betting confidence sequence (Waudby-Smith & Ramdas) against a brute-force reference
written from the paper's formulas, and its validity by simulation: streams whose true mean
sits exactly on the bound pass a sequential ``>= bound`` claim at most alpha of the time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp_assert.errors import QuantityError
from interp_assert.evaluate.sequential import BettingCS, betting_cs, decide, samples_to_decide


def reference_cs(x: list[float], alpha: float, low: float, high: float, grid: int
                 ) -> tuple[float, float]:
    """Plain loops over candidate means and time: hedged capital with predictable plug-in
    bets (c = 1/2, theta = 1/2), a candidate dropped once its capital reaches 1/alpha."""
    z = [(v - low) / (high - low) for v in x]
    kept = []
    for j in range(1, grid):
        m = j / grid
        k_plus = k_minus = 1.0
        mu_prev, var_prev = 0.5, 0.25
        total, squares, excluded = 0.0, 0.0, False
        for t, value in enumerate(z, start=1):
            lam = math.sqrt(2 * math.log(2 / alpha) / (var_prev * t * math.log(1 + t)))
            k_plus *= 1 + min(lam, 0.5 / m) * (value - m)
            k_minus *= 1 - min(lam, 0.5 / (1 - m)) * (value - m)
            if max(0.5 * k_plus, 0.5 * k_minus) >= 1 / alpha:
                excluded = True
            total += value
            mu = (0.5 + total) / (t + 1)
            squares += (value - mu) ** 2
            var_prev = (0.25 + squares) / (t + 1)
            mu_prev = mu
        del mu_prev
        if not excluded:
            kept.append(j)
    first, last = kept[0], kept[-1]
    lower = 0.0 if first == 1 else (first - 1) / grid
    upper = 1.0 if last == grid - 1 else (last + 1) / grid
    return low + (high - low) * lower, low + (high - low) * upper


@pytest.mark.parametrize(("seed", "kind", "alpha"), [(0, "bernoulli", 0.05), (1, "beta", 0.05),
                                                     (2, "beta", 0.1), (3, "scaled", 0.01)])
def test_matches_brute_force_reference(seed: int, kind: str, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    low, high = (0.0, 1.0) if kind != "scaled" else (-2.0, 3.0)
    if kind == "bernoulli":
        x = (rng.random(80) < 0.8).astype(float)
    elif kind == "beta":
        x = rng.beta(2.0, 5.0, 80)
    else:
        x = low + (high - low) * rng.beta(5.0, 2.0, 80)
    expected = reference_cs(list(x), alpha, low, high, grid=200)
    got = betting_cs(x, alpha, low, high, grid=200)
    assert max(abs(got[0] - expected[0]), abs(got[1] - expected[1])) <= 1e-12
    assert got[0] < x.mean() < got[1]
    # fed batch by batch, the sequence is the same as fed at once
    cs = BettingCS(alpha, low, high, grid=200)
    for start in range(0, 80, 7):
        cs.update(x[start:start + 7])
    assert cs.bounds() == got
    assert cs.n == 80 and cs.mean == pytest.approx(x.mean(), abs=1e-12)


def test_sequence_only_shrinks_and_narrows_like_one_over_root_n() -> None:
    x = (np.random.default_rng(5).random(4000) < 0.7).astype(float)
    cs = BettingCS(0.05)
    widths, previous = [], (0.0, 1.0)
    for start in range(0, 4000, 100):
        cs.update(x[start:start + 100])
        low, high = cs.bounds()
        assert previous[0] <= low and high <= previous[1]  # intersected over time
        previous = (low, high)
        widths.append(high - low)
    # from 1000 to 4000 samples the width roughly halves (1/sqrt(n), up to log factors)
    assert 0.4 < widths[-1] / widths[9] < 0.75


def simulate(draw, bound: float, runs: int = 1000, n: int = 200) -> float:
    """The fraction of seeded runs in which ``>= bound`` was decided to hold."""
    passes = 0
    for seed in range(runs):
        x = draw(np.random.default_rng(seed), n)
        cs = BettingCS(0.05, grid=100).update(x)
        passes += decide(cs, ">=", bound).holds is True
    return passes / runs


@pytest.mark.parametrize(("name", "draw", "bound"), [
    ("Bernoulli(0.5)", lambda rng, n: (rng.random(n) < 0.5).astype(float), 0.5),
    ("Bernoulli(0.9)", lambda rng, n: (rng.random(n) < 0.9).astype(float), 0.9),
    ("Beta(2, 2)", lambda rng, n: rng.beta(2.0, 2.0, n), 0.5),
    ("Beta(9, 1)", lambda rng, n: rng.beta(9.0, 1.0, n), 0.9),
])
def test_false_pass_rate_on_the_bound_is_at_most_alpha(name: str, draw, bound: float) -> None:
    rate = simulate(draw, bound)
    print(f"{name}: false-pass rate {rate:.3f} over 1000 runs of 200 samples (alpha 0.05)")
    assert rate <= 0.05


def test_decisions_and_the_estimate_of_samples_needed() -> None:
    ones = np.ones(1000)
    cs = BettingCS(0.05).update(ones[:50])
    assert decide(cs, ">=", 0.5).holds is True
    assert decide(cs, "<", 0.5).holds is False
    assert decide(cs, ">=", 0.99).holds is None
    undecided = decide(cs, ">=", 0.99)
    # half-width on the side of the bound (1 - lower) over the gap (1 - 0.99), squared, times n
    expected = math.ceil(50 * ((1 - undecided.lower) / 0.01) ** 2)
    assert samples_to_decide(undecided, ">=", 0.99) == expected
    assert decide(cs, "in", 0.2, 0.4).holds is False
    assert decide(BettingCS(0.05).update(np.full(400, 0.3)), "in", 0.2, 0.4).holds is True
    with pytest.raises(QuantityError, match="cannot be decided sequentially"):
        decide(cs, "==", 0.5)


def test_values_outside_the_range_or_nan_are_errors() -> None:
    with pytest.raises(QuantityError, match=r"leave the declared range \[0, 1\]"):
        BettingCS(0.05).update(np.array([0.5, 1.5]))
    with pytest.raises(QuantityError, match="NaN"):
        BettingCS(0.05).update(np.array([0.5, np.nan]))


def _p_by_hand(values: np.ndarray, alpha: float, bound: float, upward: bool) -> float:
    """The one-sided capital of the sequence's bets at ``m = bound``, one sample at a time."""
    p_max, log_k, total, squares = 0.0, 0.0, 0.0, 0.0
    for t, z in enumerate(values, start=1):
        var_before = (0.25 + squares) / t
        lam = math.sqrt(2 * math.log(2 / alpha) / (var_before * t * math.log(1 + t)))
        bet = min(lam, 0.5 / bound) if upward else -min(lam, 0.5 / (1 - bound))
        log_k += math.log(1 + bet * (z - bound))
        p_max = max(p_max, log_k)
        total += z
        squares += (z - (0.5 + total) / (t + 1)) ** 2
    return min(1.0, math.exp(-p_max))


def test_anytime_p_value_by_hand_and_against_the_decision() -> None:
    """The p-value of a sequential claim is the inverse of its one-sided capital (recomputed by
    hand) and a claim the sequence decides as holding has p ≤ (1 − C)/2."""
    from interp_assert.evaluate.sequential import anytime_p_value

    rng = np.random.default_rng(5)
    holding = 0
    for case in range(60):
        values = (rng.random(int(rng.integers(20, 400))) < rng.uniform(0.3, 0.95)).astype(float) \
            if case % 2 else rng.beta(rng.uniform(1, 9), 2, int(rng.integers(20, 400)))
        level = float(rng.choice([0.9, 0.95, 0.99]))
        bound = float(np.clip(values.mean() + rng.normal(0, 0.08), 0.02, 0.98))
        for op, upward in ((">=", True), ("<=", False)):
            p = anytime_p_value(values, 1 - level, 0.0, 1.0, op, bound)
            assert p == pytest.approx(_p_by_hand(values, 1 - level, bound, upward), rel=1e-9)
            decision = decide(BettingCS(1 - level).update(values), op, bound)
            if decision.holds is True:
                holding += 1
                assert p <= (1 - level) / 2 + 1e-12, (case, op, bound, p)
    assert holding > 20


def test_anytime_p_value_is_valid_at_the_bound() -> None:
    """1000 seeded streams whose mean sits on the bound: P(min over time of p ≤ α) ≤ α."""
    from interp_assert.evaluate.sequential import anytime_p_value

    rng = np.random.default_rng(2026)
    for draw, bound in ((lambda n: (rng.random(n) < 0.5).astype(float), 0.5),
                        (lambda n: rng.beta(2, 2, n), 0.5)):
        rejected = sum(anytime_p_value(draw(200), 0.05, 0.0, 1.0, ">=", bound) <= 0.05
                       for _ in range(1000))
        assert rejected / 1000 <= 0.05, rejected
