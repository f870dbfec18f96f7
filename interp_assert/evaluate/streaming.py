"""Streaming per-channel statistics: histograms whose range grows by doubling, exact moments and
exact threshold counts, so memory does not grow with the number of samples.

This module only accumulates; the distribution claims (claims/distribution.py) read peaks,
quantiles and fractions from the accumulated histograms."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from interp_assert.workers import parallel_map, thread_count


class StreamingStats:
    """Statistics of ``channels`` distributions fed in batches of shape [samples, channels]."""

    def __init__(self, channels: int, bins: int = 1024, thresholds: Iterable[float] = ()) -> None:
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
        return out

    @property
    def finite_n(self) -> np.ndarray:
        return self.n - self.nonfinite

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.shift + self.power_sums[0] / self.finite_n

    def _central(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.finite_n
        with np.errstate(invalid="ignore", divide="ignore"):
            m1, m2, m3, m4 = (self.power_sums[k] / n for k in range(4))
        var = m2 - m1**2
        m4c = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
        return var, m4c, n

    def std(self) -> np.ndarray:
        var, _, _ = self._central()
        return np.sqrt(np.maximum(var, 0.0))

    def kurtosis(self) -> np.ndarray:
        """Excess (Fisher) kurtosis, as ``scipy.stats.kurtosis`` with its defaults."""
        var, m4c, _ = self._central()
        with np.errstate(invalid="ignore", divide="ignore"):
            return m4c / var**2 - 3.0

    def edges(self, c: int) -> np.ndarray:
        return np.linspace(self.lo[c], self.hi[c], self.bins + 1)


_MIN_VALUES_PER_THREAD = 1 << 20


def _block_rows(channels: int) -> int:
    """Rows per block of about a megabyte of float32 values (the cache-friendly size)."""
    return max(1, (1 << 18) // max(channels, 1))


def _channel_parts(channels: int, size: int) -> list[slice]:
    """Contiguous channel ranges, one per thread, for a batch of ``size`` values."""
    parts = max(1, min(thread_count(), channels, size // _MIN_VALUES_PER_THREAD))
    bounds = np.linspace(0, channels, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
