"""Bootstrap intervals, their p-values and the rank test of the plain induction mirror, written
from ``docs/definitions.md`` ("Confidence on every claim", "Run-level error control"):

* units (sequences) are resampled with replacement, all arrays of a claim together, by
  ``numpy.random.default_rng(0)`` drawing ``integers(0, n, size=(250, n))`` per block, 8 blocks
  (2000 resamples); every claim on ``n`` units reads the same draws, so they are drawn once;
* the interval is the ``(1 − C)/2`` and ``(1 + C)/2`` linear quantiles of the statistic;
* the p-value of ``≥ b`` places ``b`` among the sorted resampled statistics as ``np.quantile``
  (linear) would;
* the Monte-Carlo rank p-value is ``(1 + #{draws ≥ observed}) / (1 + K)``;
* a token-averaged loss's per-sample values are each sequence's summed token loss over the
  mean number of scored tokens per sequence (their mean is the pooled loss).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from bench.plain.common import token_losses

RESAMPLES, BLOCK = 2000, 250


def loss_samples(logits: torch.Tensor, data: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per-sample values of the token-averaged losses on the ``repeated`` tokens and on the
    others (``first``), from position 1 on."""
    losses = token_losses(logits, data["tokens"])
    repeated = data["repeated"][:, 1:].bool()
    out = {}
    for name, mask in (("repeated", repeated), ("first", ~repeated)):
        counts = mask.sum(1).double()
        out[name] = ((losses * mask).sum(1) / counts.mean()).numpy()
    return out


@functools.cache
def draws(n: int) -> np.ndarray:
    """The ``(2000, n)`` resampled unit indices (seed 0, blocks of 250)."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.integers(0, n, size=(BLOCK, n))
                           for _ in range(RESAMPLES // BLOCK)])


def means(x: np.ndarray) -> np.ndarray:
    """The mean of each resample of the per-unit values ``x``."""
    return x[draws(len(x))].mean(axis=-1)


def ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Σ numerator / Σ denominator over each resample of the units."""
    index = draws(len(numerator))
    return numerator[index].sum(axis=-1) / denominator[index].sum(axis=-1)


def drops(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """mean(before) − mean(after) over each paired resample."""
    index = draws(len(before))
    return before[index].mean(axis=-1) - after[index].mean(axis=-1)


def recoveries(target: np.ndarray, patched: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(mean(patched) − mean(target)) / (mean(source) − mean(target)) over each paired
    resample."""
    index = draws(len(target))
    low = target[index].mean(axis=-1)
    return (patched[index].mean(axis=-1) - low) / (source[index].mean(axis=-1) - low)


def interval(statistics: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval (NaN when a resampled statistic is not finite)."""
    if not np.all(np.isfinite(statistics)):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(statistics, alpha)), float(np.quantile(statistics, 1 - alpha))


def p_at_least(statistics: np.ndarray, bound: float) -> float:
    """One-sided p-value of ``≥ bound``: the bound's linear-quantile position among the
    sorted resampled statistics (0 when all lie at or above it, 1 when all lie below)."""
    m = np.sort(statistics)
    k = int(np.sum(m < bound))
    if k == 0:
        return 0.0
    if k == len(m):
        return 1.0
    return ((k - 1) + (bound - m[k - 1]) / (m[k] - m[k - 1])) / (len(m) - 1)


def with_interval(out: dict[str, float], key: str, value: float, statistics: np.ndarray,
                  level: float = 0.95) -> None:
    """Store ``value`` under ``key`` and its interval under ``key [low]`` / ``key [high]``."""
    low, high = interval(statistics, level)
    out |= {key: value, f"{key} [low]": low, f"{key} [high]": high}


def rank_p(observed: float, scores: list[float]) -> float:
    """Monte-Carlo rank p-value of ``observed`` among ``scores`` (ties count against it)."""
    return (1 + sum(s >= observed for s in scores)) / (1 + len(scores))
