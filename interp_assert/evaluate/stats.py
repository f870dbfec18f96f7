"""Confidence intervals: Wilson for proportions, a seeded percentile bootstrap for means."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from statistics import NormalDist
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def wilson(successes: float, trials: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (z from the standard library's normal quantile,
    the same number as scipy.stats.norm.ppf without importing scipy.stats)."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    # at p = 0 (p = 1) the bound is exactly 0 (1); rounding would leave 2e-19 there
    low = 0.0 if successes <= 0 else float(max(0.0, centre - half))
    high = 1.0 if successes >= trials else float(min(1.0, centre + half))
    return (low, high)


def bootstrap_mean(samples: np.ndarray, level: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic: fixed seed, so claims on the
    same samples share one computation)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    if samples.size == 0 or not np.all(np.isfinite(samples)):
        return (float("nan"), float("nan"))
    key = (hashlib.blake2b(samples.tobytes(), digest_size=16).digest(), level, resamples)
    if key not in _BOOTSTRAPS:
        if len(_BOOTSTRAPS) >= 256:
            _BOOTSTRAPS.clear()
        _BOOTSTRAPS[key] = _bootstrap(samples, level, resamples)
    return _BOOTSTRAPS[key]


_BOOTSTRAPS: dict[tuple[bytes, float, int], tuple[float, float]] = {}


def resampled_means(samples: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """The seeded bootstrap's resampled means (the percentile interval's quantiles and the
    bootstrap p-value of :mod:`interp_assert.evaluate.pvalues` read the same ones): resample
    ``r`` is the mean of ``samples[idx[r]]``, the index rows drawn in blocks of 250 from
    ``default_rng(BOOTSTRAP_SEED)``. The draws depend only on the sample count, so they are
    drawn once per (count, resamples) and reused by every claim that bootstraps as many
    samples (the same numbers as drawing them again)."""
    idx = _indices(samples.size, resamples)
    if idx is not None:
        return samples[idx].mean(axis=1)
    means = np.empty(resamples)
    for start, block in _index_blocks(samples.size, resamples):
        means[start:start + len(block)] = samples[block].mean(axis=1)
    return means


def _index_blocks(count: int, resamples: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first resample, its block of index rows): blocks of 250 rows of ``count`` indices
    drawn from ``default_rng(BOOTSTRAP_SEED)``, the bootstrap's one drawing order."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for start in range(0, resamples, 250):
        yield start, rng.integers(0, count, size=(min(resamples, start + 250) - start, count))


#: index draws kept for reuse: at most this many (count, resamples) pairs, each at most
#: INDEX_CACHE_CELLS indices (16 MB of int64 at the default 2,000 resamples of 1,000 samples)
INDEX_CACHE_PAIRS = 4
INDEX_CACHE_CELLS = 2_000_000
_INDICES: dict[tuple[int, int], np.ndarray] = {}


def _indices(count: int, resamples: int) -> np.ndarray | None:
    """The bootstrap's [resamples, count] index draws (:func:`_index_blocks`, joined), or
    None when too large to keep."""
    if count * resamples > INDEX_CACHE_CELLS:
        return None
    key = (count, resamples)
    if key not in _INDICES:
        if len(_INDICES) >= INDEX_CACHE_PAIRS:
            _INDICES.pop(next(iter(_INDICES)))
        drawn = np.concatenate([block for _, block in _index_blocks(count, resamples)])
        drawn.flags.writeable = False
        _INDICES[key] = drawn
    return _INDICES[key]


def _bootstrap(samples: np.ndarray, level: float, resamples: int) -> tuple[float, float]:
    means = resampled_means(samples, resamples)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def interval_for(meta: dict[str, Any], level: float = 0.95) -> tuple[float, float] | None:
    """The interval of a scalar quantity from its metadata, or None if it has none."""
    if "successes" in meta and "trials" in meta:
        successes = np.asarray(meta["successes"]).reshape(-1)
        trials = np.asarray(meta["trials"]).reshape(-1)
        if successes.size == 1:
            return wilson(float(successes[0]), float(trials[0]), level)
    if "samples" in meta:
        return bootstrap_mean(meta["samples"], level)
    return None
