"""Bootstrap intervals over the sampled unit: a statistic of per-unit values, a ratio of sums
over clusters (tokens grouped by their sequence), and paired differences and ratios of a
metric measured on the same units before and after an intervention.

Every interval here is a seeded percentile bootstrap that resamples *units* (samples,
sentences, sequences) with replacement, jointly across the arrays it is given (paired):

* ``numpy.random.default_rng(SEED)`` draws ``integers(0, n, size=(B, n))`` in blocks of
  ``BLOCK`` resamples, ``RESAMPLES`` in all (the same draws as ``evaluate.stats`` makes for
  the mean, and as ``scipy.stats.bootstrap(..., n_resamples=RESAMPLES, batch=BLOCK,
  paired=True, method="percentile", rng=numpy.random.default_rng(SEED))``);
* the interval is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (``np.quantile``,
  linear) of the resampled statistic.

NaN policy: a NaN or infinite per-unit value, no units, or a resampled statistic that is not
finite (a ratio whose denominator vanishes in some resample) gives a NaN interval, which never
passes. ``docs/definitions.md`` ("Confidence on every claim") has the formulas.

What a value records in its ``meta`` for these intervals (read by :func:`interval_of`):

* ``samples``: per-unit values whose mean is the value (``evaluate.stats``), optionally with
  ``statistic``: the name of another statistic of the pooled samples (``std``, ``quantile``...,
  see :func:`statistic_function`) and ``unit_rows``: how many consecutive samples form one unit;
* ``successes``/``trials``: a rate (Wilson), with optional ``clusters``: per-unit
  ``(numerator, denominator)`` sums (a token rate clustered by sequence);
* ``paired``: ``(before, after)`` per-unit values on the same units (or ``(before, after,
  source)`` for a recovery), with ``change`` (drop, rise, change or recover).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

RESAMPLES = 2000
SEED = 0
BLOCK = 250

Statistic = Callable[..., np.ndarray]
"""A statistic vectorised over resamples: arrays (B, n) in, (B,) out."""


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED
                     ) -> Iterator[np.ndarray]:
    """Blocks of (B, n) unit indices drawn with replacement (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, BLOCK):
        yield rng.integers(0, n, size=(min(resamples, start + BLOCK) - start, n))


def resampled_statistics(data: Sequence[np.ndarray], statistic: Statistic,
                         resamples: int = RESAMPLES) -> np.ndarray | None:
    """``statistic(*data)`` on each seeded resample of the units (the first axis, shared by
    every array of ``data``, resampled jointly); None when the data cannot be resampled
    (no units, unequal lengths) or holds a NaN or inf."""
    arrays = [np.asarray(a, dtype=np.float64) for a in data]
    if not arrays or arrays[0].shape[0] == 0 or any(a.shape[0] != arrays[0].shape[0]
                                                    for a in arrays):
        return None
    if not all(np.all(np.isfinite(a)) for a in arrays):
        return None
    n = arrays[0].shape[0]
    return np.concatenate([np.asarray(statistic(*(a[idx] for a in arrays)), dtype=np.float64)
                           .reshape(-1) for idx in resample_indices(n, resamples)])


def bootstrap(data: Sequence[np.ndarray], statistic: Statistic, level: float = 0.95,
              key: str = "", resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*data)``, resampling the units (the first
    axis, shared by every array of ``data``) jointly. ``key`` names the statistic for the cache
    (claims on the same values share one computation); empty: not cached."""
    cache_key = None
    if key:
        digest = hashlib.blake2b(digest_size=16)
        for a in data:
            a = np.asarray(a, dtype=np.float64)
            digest.update(repr(a.shape).encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        cache_key = (digest.digest(), key, level, resamples)
        if cache_key in _CACHE:
            return _CACHE[cache_key]
    thetas = resampled_statistics(data, statistic, resamples)
    if thetas is None or not np.all(np.isfinite(thetas)):
        out = (float("nan"), float("nan"))
    else:
        alpha = (1 - level) / 2
        out = (float(np.quantile(thetas, alpha)), float(np.quantile(thetas, 1 - alpha)))
    if cache_key is not None:
        if len(_CACHE) >= 256:
            _CACHE.clear()
        _CACHE[cache_key] = out
    return out


_CACHE: dict[Any, tuple[float, float]] = {}


# -- statistics ------------------------------------------------------------------------------
def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num.sum(axis=-1) / den.sum(axis=-1)


def mean_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean of per-unit values (the numbers of
    ``evaluate.stats.bootstrap_mean``)."""
    return bootstrap([np.asarray(samples, dtype=np.float64).reshape(-1)], _mean, level, "mean")


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray, level: float = 0.95
                   ) -> tuple[float, float]:
    """Cluster bootstrap of ``Σ numerator / Σ denominator`` over units (e.g. correct tokens
    over scored tokens, per sequence; summed attention weight over counted pairs, per
    sentence)."""
    num = np.asarray(numerator, dtype=np.float64).reshape(-1)
    den = np.asarray(denominator, dtype=np.float64).reshape(-1)
    return bootstrap([num, den], _ratio, level, "ratio")


def statistic_function(name: str, **options: Any) -> Statistic:
    """A distribution statistic vectorised over resamples (rows of finite values):
    ``mean``, ``std``/``var`` (``ddof``), ``skew``/``kurtosis`` (``unbiased``: pandas' G1/G2,
    else scipy's biased g1/excess g2), ``min``, ``max``, ``median``/``quantile`` (``q``,
    ``method``: any ``np.quantile`` method) and ``fraction`` (``var`` ``x`` or ``|x|``, ``op``,
    ``threshold``)."""
    if name == "mean":
        return _mean
    if name in ("std", "var"):
        ddof = int(options.get("ddof", 0))
        return lambda x: (x.std if name == "std" else x.var)(axis=-1, ddof=ddof)
    if name in ("skew", "kurtosis"):
        from scipy import stats

        bias = not options.get("unbiased", False)
        if name == "skew":
            return lambda x: stats.skew(x, axis=-1, bias=bias)
        return lambda x: stats.kurtosis(x, axis=-1, bias=bias)
    if name in ("min", "max"):
        return lambda x: getattr(x, name)(axis=-1)
    if name in ("median", "quantile"):
        q = 0.5 if name == "median" else float(options["q"])
        method = str(options.get("method", "linear"))
        return lambda x: np.quantile(x, q, axis=-1, method=method)
    if name == "fraction":
        threshold, op = float(options["threshold"]), str(options["op"])
        absolute = options.get("var", "|x|") == "|x|"
        ops = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
        return lambda x: ops[op](np.abs(x) if absolute else x, threshold).mean(axis=-1)
    raise ValueError(f"no bootstrap for the statistic '{name}'")


def statistic_interval(samples: np.ndarray, name: str, level: float = 0.95,
                       unit_rows: int = 1, **options: Any) -> tuple[float, float]:
    """Bootstrap of a statistic of pooled samples, resampling units of ``unit_rows``
    consecutive samples (a sequence's tokens) together."""
    values = np.asarray(samples, dtype=np.float64).reshape(-1)
    rows = max(int(unit_rows), 1)
    if values.size % rows:
        rows = 1
    units = values.reshape(-1, rows)
    function = statistic_function(name, **options)

    def pooled(x: np.ndarray) -> np.ndarray:  # (B, units, rows) -> (B, units * rows)
        return function(x.reshape(x.shape[0], -1))

    key = f"{name} {sorted(options.items())} {rows}"
    return bootstrap([units], pooled, level, key)


# -- paired ----------------------------------------------------------------------------------
def paired_statistic(change: str) -> Statistic:
    """The effect of an intervention on resampled units: ``drop`` mean(before) − mean(after),
    ``rise`` the reverse, ``change`` its absolute value, ``recover``
    (mean(after) − mean(before)) / (mean(source) − mean(before)), ``share`` (four arrays:
    before, after, high, low) (mean(after) − mean(before)) / (mean(high) − mean(low))."""
    verb = change.rstrip("s") if change != "changes" else "change"

    def effect(before: np.ndarray, after: np.ndarray, *source: np.ndarray) -> np.ndarray:
        b, a = before.mean(axis=-1), after.mean(axis=-1)
        if verb == "drop":
            return b - a
        if verb == "rise":
            return a - b
        if verb == "change":
            return np.abs(a - b)
        if verb == "share":
            with np.errstate(invalid="ignore", divide="ignore"):
                return (a - b) / (source[0].mean(axis=-1) - source[1].mean(axis=-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a - b) / (source[0].mean(axis=-1) - b)

    return effect


def paired_interval(before: np.ndarray, after: np.ndarray, change: str = "drop",
                    level: float = 0.95, source: np.ndarray | None = None
                    ) -> tuple[float, float]:
    """Paired bootstrap of an intervention's effect on the same units (see
    :func:`paired_statistic`); ``source`` (per unit, for ``recover``) is resampled with
    them."""
    data = [np.asarray(before, dtype=np.float64).reshape(-1),
            np.asarray(after, dtype=np.float64).reshape(-1)]
    if source is not None:
        data.append(np.asarray(source, dtype=np.float64).reshape(-1))
    return bootstrap(data, paired_statistic(change), level, f"paired {change}")


def unpaired_interval(before: np.ndarray, after: np.ndarray, change: str = "drop",
                      level: float = 0.95) -> tuple[float, float]:
    """Bootstrap of the effect when ``before`` and ``after`` are not on the same units: each
    resampled on its own (the second from the continued generator)."""
    b = np.asarray(before, dtype=np.float64).reshape(-1)
    a = np.asarray(after, dtype=np.float64).reshape(-1)
    if b.size == 0 or a.size == 0 or not (np.all(np.isfinite(b)) and np.all(np.isfinite(a))):
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(SEED)
    effect = paired_statistic(change)
    thetas = []
    for start in range(0, RESAMPLES, BLOCK):
        size = min(RESAMPLES, start + BLOCK) - start
        ib = rng.integers(0, b.size, size=(size, b.size))
        ia = rng.integers(0, a.size, size=(size, a.size))
        thetas.append(effect(b[ib], a[ia]))
    theta = np.concatenate(thetas)
    alpha = (1 - level) / 2
    return (float(np.quantile(theta, alpha)), float(np.quantile(theta, 1 - alpha)))


# -- from a value's meta ---------------------------------------------------------------------
def interval_of(meta: dict[str, Any], level: float = 0.95) -> tuple[float, float] | None:
    """The interval of a scalar value from its ``meta`` (see the module docstring), or None
    when it records nothing to build one from. Without ``paired``, ``clusters`` or
    ``statistic`` this is ``evaluate.stats.interval_for`` (Wilson, bootstrap of the mean)."""
    from interp_assert.evaluate.stats import interval_for

    if "paired" in meta:
        arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in meta["paired"]]
        change = str(meta.get("change", "drop"))
        return bootstrap(arrays, paired_statistic(change), level, f"paired {change}")
    if "clusters" in meta:
        numerator, denominator = meta["clusters"]
        return ratio_interval(numerator, denominator, level)
    if "statistic" in meta and "samples" in meta:
        options = dict(meta.get("statistic_options", {}))
        return statistic_interval(meta["samples"], str(meta["statistic"]), level,
                                  int(meta.get("unit_rows", 1)), **options)
    return interval_for(meta, level)


def statistics_of(meta: dict[str, Any]) -> np.ndarray | None:
    """The seeded resampled statistics whose percentiles :func:`interval_of` reads, for a
    ``paired``, ``clusters`` or ``statistic`` meta (None for the others, and for data that
    cannot be resampled): the p-values of :mod:`interp_assert.evaluate.pvalues` invert them."""
    if "paired" in meta:
        arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in meta["paired"]]
        return resampled_statistics(arrays, paired_statistic(str(meta.get("change", "drop"))))
    if "clusters" in meta:
        numerator, denominator = meta["clusters"]
        return resampled_statistics([np.asarray(numerator, dtype=np.float64).reshape(-1),
                                     np.asarray(denominator, dtype=np.float64).reshape(-1)],
                                    _ratio)
    if "statistic" in meta and "samples" in meta:
        values = np.asarray(meta["samples"], dtype=np.float64).reshape(-1)
        rows = max(int(meta.get("unit_rows", 1)), 1)
        rows = rows if values.size % rows == 0 else 1
        function = statistic_function(str(meta["statistic"]),
                                      **dict(meta.get("statistic_options", {})))
        return resampled_statistics([values.reshape(-1, rows)],
                                    lambda x: function(x.reshape(x.shape[0], -1)))
    return None


def units_of(meta: dict[str, Any]) -> int | None:
    """How many units the interval of ``meta`` resamples (for reports), if known."""
    if "paired" in meta:
        return int(np.asarray(meta["paired"][0]).size)
    if "clusters" in meta:
        return int(np.asarray(meta["clusters"][0]).size)
    if "samples" in meta:
        size = int(np.asarray(meta["samples"]).size)
        return size // max(int(meta.get("unit_rows", 1)), 1)
    if "trials" in meta:
        trials = np.asarray(meta["trials"]).reshape(-1)
        return int(trials[0]) if trials.size == 1 else None
    return None



def combined_samples(op: str, left: Any, right: Any) -> np.ndarray | None:
    """Per-unit values of ``left op right`` for two scalar values (``Labelled``): for ``+`` and
    ``-`` of two values with per-unit ``samples`` on as many units, the unit-wise sum or
    difference; for ``+ - * /`` with a constant (a scalar without samples, e.g. a number),
    each unit's value combined with it. Only where the mean of the result's samples is the
    result (each side's value is the mean of its samples); otherwise None."""
    if getattr(left, "ndim", 1) or getattr(right, "ndim", 1):
        return None
    mine = [_samples_of(side) for side in (left, right)]
    if mine[0] is None and mine[1] is None:
        return None
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
    if op not in ops:
        return None
    if mine[0] is not None and mine[1] is not None:
        if op not in ("+", "-") or mine[0].size != mine[1].size:
            return None
        return ops[op](mine[0], mine[1])
    constant = right if mine[0] is not None else left
    if "samples" in constant.meta:  # samples whose mean is not the value: no combination
        return None
    if mine[0] is None and op == "/":  # c / x: the mean of c / x_i is not c / mean(x)
        return None
    a = mine[0] if mine[0] is not None else float(left.values)
    b = mine[1] if mine[1] is not None else float(right.values)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(ops[op](a, b), dtype=np.float64)


def _samples_of(value: Any) -> np.ndarray | None:
    """A scalar value's per-unit samples when their mean is the value (no other statistic)."""
    meta = value.meta
    if "samples" not in meta or "statistic" in meta:
        return None
    samples = np.asarray(meta["samples"], dtype=np.float64).reshape(-1)
    if samples.size == 0 or not np.isclose(samples.mean(), float(value.values), rtol=1e-9,
                                           atol=1e-12):
        return None
    return samples


__all__ = ["BLOCK", "RESAMPLES", "SEED", "bootstrap", "combined_samples", "interval_of",
           "mean_interval", "paired_interval", "paired_statistic", "ratio_interval",
           "resample_indices", "statistic_function", "statistic_interval", "units_of",
           "unpaired_interval"]
