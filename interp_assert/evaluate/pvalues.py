"""p-values of confidence claims, each the inverse of the interval the claim is judged by.

A claim ``x ≥ b with C% confidence`` holds when the lower end of the two-sided C% interval
clears ``b`` (:func:`interp_assert.evaluate.stats.interval_for`). Its p-value is the smallest
one-sided level at which that happens: the lower end of the two-sided ``1 − 2p`` interval lies
exactly on ``b``. So, for every level C,

    p ≤ (1 − C) / 2   ⇔   the C% interval clears the bound

(up to floating-point ties), and a run-level correction (:mod:`interp_assert.judge.error_control`)
can compare these p-values with its own thresholds.

* ``successes``/``trials`` (rates, Wilson intervals): the score test the Wilson interval
  inverts, ``p = Φ(−(p̂ − b) / √(b(1 − b)/n))`` for ``≥ b`` (and ``Φ(+…)`` for ``≤ b``).
* ``samples`` (means, percentile bootstrap intervals): where the bound falls among the same
  seeded resampled means, ``p = h / (R − 1)`` with ``h`` the (linearly interpolated) position of
  ``b`` among the R sorted means: the fraction of resampled means on the wrong side, refined so
  that it inverts ``numpy.quantile``'s linear interpolation exactly.
* ``paired``, ``clusters`` or ``statistic`` (paired effects, ratios of sums over sequences,
  statistics of pooled samples; :mod:`interp_assert.evaluate.intervals`): the same inversion
  over the same seeded resampled statistics their percentile interval reads.
* ``in [a, b]`` and ``≈ c ± t`` (both ends of the interval must clear): the larger of the two
  one-sided p-values.
* Sequential claims that track an e-process: :func:`p_from_e_value`, ``min(1, 1 / max e)``.

A value without counts or samples, ``==`` and ``!=`` have no p-value (None). A NaN bound, an
empty sample or a non-finite sample gives p = 1: NaN never passes.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from interp_assert.evaluate.stats import BOOTSTRAP_RESAMPLES, resampled_means

LOWER = (">", ">=")
UPPER = ("<", "<=")


def p_value_for(meta: dict[str, Any], op: str, bound: float,
                upper: float | None = None) -> float | None:
    """The p-value of ``value op bound`` (``in [bound, upper]``, ``≈ bound ± upper``) from
    the metadata :func:`~interp_assert.evaluate.stats.interval_for` reads, or None."""
    if op not in (*LOWER, *UPPER, "in", "≈"):
        return None
    if any(key in meta for key in ("paired", "clusters", "statistic")):
        from interp_assert.evaluate.intervals import statistics_of

        thetas = statistics_of(meta)
        if thetas is None or not np.all(np.isfinite(thetas)):
            return 1.0
        ordered = np.sort(thetas)
        return max(_bootstrap_side(ordered, side, b) for side, b in _sides(op, bound, upper))
    if "successes" in meta and "trials" in meta:
        successes = np.asarray(meta["successes"]).reshape(-1)
        trials = np.asarray(meta["trials"]).reshape(-1)
        if successes.size == 1:
            return wilson_p(float(successes[0]), float(trials[0]), op, bound, upper)
    if "samples" in meta:
        return bootstrap_p(meta["samples"], op, bound, upper)
    return None


def _sides(op: str, bound: float, upper: float | None) -> list[tuple[str, float]]:
    """The one-sided comparisons a claim's interval must pass."""
    if op in LOWER or op in UPPER:
        return [(op, bound)]
    if op == "≈":
        assert upper is not None
        if math.isinf(bound):
            return [(">=", math.nan)]  # never: a finite value is infinitely far from ±inf
        return [(">=", bound - upper), ("<=", bound + upper)]
    assert upper is not None
    return [(">=", bound), ("<=", upper)]


def wilson_p(successes: float, trials: float, op: str, bound: float,
             upper: float | None = None) -> float:
    """The score-test p-value that the Wilson interval of ``successes/trials`` inverts."""
    if not trials > 0 or not math.isfinite(successes):
        return 1.0
    return max(_wilson_side(successes, trials, side, b) for side, b in _sides(op, bound, upper))


def _wilson_side(successes: float, trials: float, op: str, bound: float) -> float:
    if math.isnan(bound):
        return 1.0
    if op in UPPER:  # the upper end of k/n is one minus the lower end of (n - k)/n
        return _wilson_side(trials - successes, trials, ">" if op == "<" else ">=", 1 - bound)
    strict = op == ">"
    if bound < 0 or (bound == 0 and not strict):
        return 0.0  # the lower end is never below 0
    if bound == 0:
        return 0.0 if successes > 0 else 1.0  # the lower end is 0 exactly when k = 0
    if bound >= 1:
        return 1.0  # the lower end is below 1 at every level
    z = (successes / trials - bound) / math.sqrt(bound * (1 - bound) / trials)
    return 0.5 * math.erfc(z / math.sqrt(2))  # Φ(−z), accurate far into the tail


def bootstrap_p(samples: Any, op: str, bound: float, upper: float | None = None,
                resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """The p-value the seeded percentile bootstrap interval of the mean inverts."""
    values = np.asarray(samples, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return 1.0
    means = _sorted_means(values, resamples)
    return max(_bootstrap_side(means, side, b) for side, b in _sides(op, bound, upper))


def _bootstrap_side(means: np.ndarray, op: str, bound: float) -> float:
    """Invert the linearly interpolated quantile ``Q(q)`` of the sorted ``means``:
    ``≥ b`` holds at one-sided level q when ``Q(q) ≥ b``, ``≤ b`` when ``Q(1 − q) ≤ b``."""
    if math.isnan(bound):
        return 1.0
    count = means.size
    lower = op in LOWER
    # strict lower and non-strict upper bounds count the means equal to the bound as below it
    side = "right" if op in (">", "<=") else "left"
    k = int(np.searchsorted(means, bound, side=side))
    if k == 0:
        return 0.0 if lower else 1.0
    if k == count:
        return 1.0 if lower else 0.0
    below, above = means[k - 1], means[k]
    position = (k - 1) + (bound - below) / (above - below)
    fraction = position / (count - 1)
    return float(fraction if lower else 1 - fraction)


_MEANS: dict[tuple[bytes, int], np.ndarray] = {}


def _sorted_means(values: np.ndarray, resamples: int) -> np.ndarray:
    key = (hashlib.blake2b(values.tobytes(), digest_size=16).digest(), resamples)
    if key not in _MEANS:
        if len(_MEANS) >= 64:
            _MEANS.clear()
        _MEANS[key] = np.sort(resampled_means(values, resamples))
    return _MEANS[key]


def p_from_e_value(largest_e: float) -> float:
    """The p-value of an e-process: ``min(1, 1 / max e)`` (Ville's inequality); NaN gives 1."""
    if math.isnan(largest_e) or largest_e <= 0:
        return 1.0
    return min(1.0, 1.0 / largest_e)


def percentile_p(statistics: Any, op: str, bound: float, upper: float | None = None
                 ) -> float | None:
    """The p-value that the percentile interval of resampled ``statistics`` (``np.quantile``,
    linear, of the finite draws: a held-out R²'s) inverts; 1 when none is finite; None for
    ``==``/``!=``."""
    if op not in (*LOWER, *UPPER, "in", "≈"):
        return None
    values = np.asarray(statistics, dtype=np.float64).reshape(-1)
    values = np.sort(values[np.isfinite(values)])
    if values.size == 0:
        return 1.0
    return max(_bootstrap_side(values, side, b) for side, b in _sides(op, bound, upper))
