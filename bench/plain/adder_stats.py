"""Interval arithmetic the adder's plain mirror does by hand, from ``docs/definitions.md``
("Comparisons and confidence intervals", "Confidence on every claim", "Run-level error
control"): the Wilson score interval, its score-test p-value and the seeded percentile
bootstrap (standard library and numpy only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RESAMPLES, BLOCK, SEED = 2000, 250, 0


def score_p_at_least(successes: int, trials: int, bound: float) -> float:
    """One-sided p-value of "rate >= bound" (the score test the Wilson interval inverts):
    ``Phi(-Z)``, ``Z = (p - b) / sqrt(b (1 - b) / n)``, as ``erfc(Z / sqrt 2) / 2``."""
    if bound <= 0:
        return 0.0
    if bound >= 1:
        return 1.0
    z = (successes / trials - bound) / math.sqrt(bound * (1 - bound) / trials)
    return 0.5 * math.erfc(z / math.sqrt(2))


def bootstrap(arrays: list[np.ndarray], statistic: Callable[..., np.ndarray],
              level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap: ``default_rng(0)`` draws ``integers(0, n, (250, n))`` per block,
    8 blocks, the arrays resampled jointly along their first axis; the ``(1 -+ level) / 2``
    quantiles (linear) of the statistic."""
    rng = np.random.default_rng(SEED)
    n = len(arrays[0])
    thetas = []
    for start in range(0, RESAMPLES, BLOCK):
        idx = rng.integers(0, n, size=(min(BLOCK, RESAMPLES - start), n))
        thetas.append(statistic(*(a[idx] for a in arrays)))
    theta = np.concatenate(thetas)
    alpha = (1 - level) / 2
    return float(np.quantile(theta, alpha)), float(np.quantile(theta, 1 - alpha))
