"""Streaming per-channel statistics: histograms whose range grows by doubling, exact moments and
exact threshold counts, so memory does not grow with the number of samples; and, while they fit
(see :data:`KEEP_FRACTION`), the raw samples themselves, so that quantiles and fractions are
exact.

Conventions (``docs/definitions.md``): moments are over the finite values of a channel; the
variance is ``Σ(x - mean)² / (n - ddof)`` (``ddof`` 0 by default, numpy's; 1 is pandas'), the
skew and kurtosis are the biased Fisher-Pearson ``g1`` and excess ``g2`` (scipy's defaults) or,
``unbiased``, pandas' adjusted ``G1`` and ``G2``.

This module only accumulates; the distribution claims (claims/distribution.py) read peaks,
quantiles and fractions through :mod:`interp_assert.evaluate.channel_stats`."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from interp_assert.resources import format_bytes, memory_limit
from interp_assert.workers import parallel_map, thread_count

KEEP_FRACTION = 0.25
"""Raw samples are kept while twice their size (they are gathered into one array at the end)
is at most this fraction of the memory limit; beyond it only the histograms stay, and
statistics read from them carry their error bound."""


NOT_KEPT = "no claim reads quantiles or fractions of it, so its raw samples were not kept"
"""Why the statistics of a planned ``distribution:`` sink hold no raw samples (the plan asked
for none); unlike samples dropped under the memory limit, such statistics are cached."""


class StreamingStats:
    """Statistics of ``channels`` distributions fed in batches of shape [samples, channels]."""

    def __init__(self, channels: int, bins: int = 1024, thresholds: Iterable[float] = (),
                 keep_samples: bool = True) -> None:
        if bins % 2:
            raise ValueError("bins must be even")
        self.channels, self.bins = channels, bins
        self.counts = np.zeros((channels, bins), dtype=np.int64)
        self.lo = np.full(channels, np.nan)
        self.hi = np.full(channels, np.nan)
        self.n = 0
        self.shift = np.zeros(channels)
        self.power_sums = np.zeros((4, channels))
        self.minimum = np.full(channels, np.inf)
        self.maximum = np.full(channels, -np.inf)
        self.nonfinite = np.zeros(channels, dtype=np.int64)
        self.thresholds = tuple(sorted(set(float(t) for t in thresholds)))
        self.below = np.zeros((len(self.thresholds), channels), dtype=np.int64)
        #: the raw batches [samples, channels] while they fit; None once dropped
        self._kept: list[np.ndarray] | None = [] if keep_samples else None
        self._kept_bytes = 0
        self._gathered: np.ndarray | None = None
        self.dropped = "" if keep_samples else "samples were not kept"

    # -- feeding ---------------------------------------------------------------------------
    def update(self, batch: np.ndarray) -> None:
        """Add a batch of shape [samples, channels]. float32 batches are read as they are (a
        float64 copy would double the cost); sums are accumulated in float64 either way.

        Large batches are split by channels over a few threads (numpy releases the GIL, and
        in a forward hook the cores torch uses are otherwise idle); every thread owns its
        channels, so the result does not depend on the split."""
        values = np.asarray(batch)
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
        values = values.reshape(-1, self.channels)
        if values.shape[0] == 0:
            return
        first = self.n == 0
        self.n += values.shape[0]
        parts = _channel_parts(self.channels, values.size)
        if len(parts) == 1:
            self._update_channels(values, slice(None), first)
        else:
            parallel_map(lambda c: self._update_channels(values[:, c], c, first), parts)
        self._keep(values)

    def _keep(self, values: np.ndarray) -> None:
        """Keep a copy of the batch while the samples fit (see :data:`KEEP_FRACTION`)."""
        if self._kept is None:
            return
        limit = memory_limit()
        need = 2 * (self._kept_bytes + values.nbytes)
        if limit is not None and need > KEEP_FRACTION * limit:
            self._kept, self._gathered, self._kept_bytes = None, None, 0
            self.dropped = (f"the raw samples would need about {format_bytes(need)}, over "
                            f"{KEEP_FRACTION:.0%} of the memory limit of {format_bytes(limit)}")
            return
        self._kept.append(np.array(values, copy=True))
        self._kept_bytes += values.nbytes
        self._gathered = None

    def _update_channels(self, values: np.ndarray, cols: slice, first: bool) -> None:
        low, high = values.min(axis=0), values.max(axis=0)  # NaN and inf show up here
        all_finite = bool(np.isfinite(low).all() and np.isfinite(high).all())
        if not all_finite:
            finite = np.isfinite(values)
            self.nonfinite[cols] += np.sum(~finite, axis=0)
            values = np.where(finite, values, np.nan)
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        if first:
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                self.shift[cols] = np.nan_to_num(np.nanmean(values, axis=0, dtype=np.float64))
        shift = self.shift[cols].astype(values.dtype)
        sums = self.power_sums[:, cols]  # a view: updated in place
        # row blocks of about a megabyte: the temporaries stay in the cache
        step = _block_rows(values.shape[1])
        for start in range(0, values.shape[0], step):
            block = values[start:start + step]
            centred = block - shift
            if not all_finite:
                np.nan_to_num(centred, copy=False)
            square = centred * centred
            sums[0] += centred.sum(axis=0, dtype=np.float64)
            sums[1] += square.sum(axis=0, dtype=np.float64)
            sums[2] += np.einsum("ij,ij->j", square, centred, dtype=np.float64)
            sums[3] += np.einsum("ij,ij->j", square, square, dtype=np.float64)
            if self.thresholds:
                magnitude = np.abs(block if all_finite else np.nan_to_num(block, nan=np.inf))
                for i, t in enumerate(self.thresholds):
                    self.below[i, cols] += np.sum(magnitude < t, axis=0)
        self.minimum[cols] = np.fmin(self.minimum[cols], low)
        self.maximum[cols] = np.fmax(self.maximum[cols], high)
        self._grow(cols)
        self._add(values, cols, all_finite)

    def _grow(self, cols: slice) -> None:
        """Widen the histogram ranges of ``cols`` to their minimum and maximum so far."""
        lo, hi, counts = self.lo[cols], self.hi[cols], self.counts[cols]  # views
        low, high = self.minimum[cols], self.maximum[cols]
        fresh = np.isnan(lo)
        if fresh.any():
            span = np.maximum(high[fresh] - low[fresh], 1e-6)
            lo[fresh] = low[fresh] - 0.05 * span
            hi[fresh] = high[fresh] + 0.05 * span
        half = self.bins // 2
        for c in np.flatnonzero((low < lo) | (high > hi)):
            while low[c] < lo[c] or high[c] > hi[c]:
                merged = counts[c].reshape(half, 2).sum(axis=1)
                width = hi[c] - lo[c]
                if high[c] > hi[c]:
                    counts[c] = np.concatenate([merged, np.zeros(half, np.int64)])
                    hi[c] += width
                else:
                    counts[c] = np.concatenate([np.zeros(half, np.int64), merged])
                    lo[c] -= width

    def _add(self, values: np.ndarray, cols: slice, all_finite: bool) -> None:
        # bin = (v - lo) * scale clipped to [0, bins - 1] and truncated (a floor: it is not
        # negative), plus the channel's offset into the flattened counts. Computed in row
        # blocks whose temporaries stay in the cache, into one index array for one bincount.
        rows, channels = values.shape
        lo = self.lo[cols]
        scale = (self.bins / (self.hi[cols] - lo)).astype(values.dtype)
        lo = lo.astype(values.dtype)
        offsets = np.arange(channels, dtype=np.intp) * self.bins
        index = np.empty((rows, channels), dtype=np.intp)
        step = _block_rows(channels)
        position = np.empty((min(step, rows), channels), dtype=values.dtype)
        with np.errstate(invalid="ignore"):  # NaN positions are masked out below
            for start in range(0, rows, step):
                block = values[start:start + step]
                here = position[:len(block)]
                np.subtract(block, lo, out=here)
                here *= scale
                np.clip(here, 0, self.bins - 1, out=here)
                out = index[start:start + len(block)]
                np.copyto(out, here, casting="unsafe")
                out += offsets
        flat = index.ravel() if all_finite else index[np.isfinite(values)]
        self.counts[cols] += np.bincount(flat, minlength=channels * self.bins).reshape(
            channels, self.bins)

    # -- results ---------------------------------------------------------------------------
    def take(self, indices: Sequence[int]) -> StreamingStats:
        """The statistics of a subset of channels."""
        out = StreamingStats.__new__(StreamingStats)
        out.__dict__.update(self.__dict__)
        idx = list(indices)
        out.channels = len(idx)
        for name in ("counts", "lo", "hi", "shift", "minimum", "maximum", "nonfinite"):
            setattr(out, name, getattr(self, name)[idx])
        out.power_sums = self.power_sums[:, idx]
        out.below = self.below[:, idx]
        gathered = self.samples()
        subset = None if gathered is None else gathered[idx]
        out._kept = None if subset is None else [subset.T]
        out._gathered = subset
        return out

    @property
    def exact(self) -> bool:
        """Whether the raw samples were kept (quantiles and fractions are then exact)."""
        return self._kept is not None

    def samples(self) -> np.ndarray | None:
        """The kept samples as ``[channels, samples]`` (each channel contiguous; NaN and inf
        included), or None when they were not kept."""
        if self._kept is None:
            return None
        if self._gathered is None:
            dtype = np.result_type(*self._kept) if self._kept else np.float64
            out = np.empty((self.channels, sum(len(p) for p in self._kept)), dtype=dtype)
            start = 0
            for part in self._kept:
                out[:, start:start + len(part)] = part.T
                start += len(part)
            self._kept, self._gathered = [out.T], out  # one copy, not the batches and it
        return self._gathered

    @property
    def finite_n(self) -> np.ndarray:
        return self.n - self.nonfinite

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.shift + self.power_sums[0] / self.finite_n

    def central(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per channel: the finite count n and the central moments m2, m3, m4 (each
        ``Σ(x - mean)^k / n``)."""
        n = self.finite_n
        with np.errstate(invalid="ignore", divide="ignore"):
            m1, m2, m3, m4 = (self.power_sums[k] / n for k in range(4))
        var = m2 - m1**2
        m3c = m3 - 3 * m1 * m2 + 2 * m1**3
        m4c = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
        return n, np.maximum(var, 0.0), m3c, m4c

    def var(self, ddof: int = 0) -> np.ndarray:
        n, m2, _, _ = self.central()
        return variance(n, m2, ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.var(ddof))

    def skew(self, unbiased: bool = False) -> np.ndarray:
        """Skewness: scipy's ``skew`` (biased g1), or pandas' ``skew`` (``unbiased``: G1)."""
        n, m2, m3, _ = self.central()
        return skewness(n, m2, m3, unbiased)

    def kurtosis(self, unbiased: bool = False) -> np.ndarray:
        """Excess (Fisher) kurtosis: ``scipy.stats.kurtosis`` with its defaults (biased g2),
        or pandas' ``kurt`` (``unbiased``: G2)."""
        n, m2, _, m4 = self.central()
        return kurtosis(n, m2, m4, unbiased)

    def edges(self, c: int) -> np.ndarray:
        return np.linspace(self.lo[c], self.hi[c], self.bins + 1)


# -- moment conventions (shared with channel_stats and the expression functions) ----------
def variance(n: np.ndarray | float, m2: np.ndarray | float, ddof: int = 0) -> np.ndarray:
    """``n·m2 / (n - ddof)``; NaN where ``n <= ddof``."""
    n, m2 = np.asarray(n, dtype=np.float64), np.asarray(m2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > ddof, m2 * n / (n - ddof), np.nan)


def skewness(n: np.ndarray | float, m2: np.ndarray | float, m3: np.ndarray | float,
             unbiased: bool = False) -> np.ndarray:
    """g1 = m3 / m2^1.5; unbiased: G1 = g1·√(n(n-1)) / (n-2) (NaN for n < 3)."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = np.asarray(m3) / np.asarray(m2) ** 1.5
        if not unbiased:
            return g1
        return np.where(n >= 3, g1 * np.sqrt(n * (n - 1)) / (n - 2), np.nan)


def kurtosis(n: np.ndarray | float, m2: np.ndarray | float, m4: np.ndarray | float,
             unbiased: bool = False) -> np.ndarray:
    """g2 = m4 / m2² - 3; unbiased: G2 = ((n+1)·g2 + 6)·(n-1) / ((n-2)(n-3)) (NaN for n < 4)."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g2 = np.asarray(m4) / np.asarray(m2) ** 2 - 3.0
        if not unbiased:
            return g2
        return np.where(n >= 4, ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3)), np.nan)


_MIN_VALUES_PER_THREAD = 1 << 20


def _block_rows(channels: int) -> int:
    """Rows per block of about a megabyte of float32 values (the cache-friendly size)."""
    return max(1, (1 << 18) // max(channels, 1))


def _channel_parts(channels: int, size: int) -> list[slice]:
    """Contiguous channel ranges, one per thread, for a batch of ``size`` values."""
    parts = max(1, min(thread_count(), channels, size // _MIN_VALUES_PER_THREAD))
    bounds = np.linspace(0, channels, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
