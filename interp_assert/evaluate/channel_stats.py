"""Per-channel statistics read from streaming histograms: moments, quantiles, fractions of
values and significant peaks of each channel, and the channels of a quantity.

Peaks are found on a histogram of the central 99.8% of the values, rebinned from the streaming
histogram to ``2·n^(1/3)`` bins (at most 64; zero-padded so an edge can be a peak); a peak
counts when its prominence is at least 5% of the highest bin and 4 Poisson standard deviations.
Peak locations are refined on the smoothed fine histogram and clipped to the exact min/max.
Importing this module registers the expression functions ``peak`` and ``npeaks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Labelled, singular

PEAK_PROMINENCE = 0.05
"""A peak's prominence must be at least this fraction of the highest bin ..."""

PEAK_SIGMAS = 4.0
"""... and this many Poisson standard deviations of the counts at the peak and its saddle."""

SMOOTH = 1.0
"""Peak locations are refined on the fine histogram smoothed over this many coarse bins."""

MAX_BINS = 64
CENTRAL = 0.001
_GENERIC_NOUNS = frozenset({"channel", "element", "member", "group", "unit", "value", "row",
                            "label", "entry", "item"})


# -- one channel's histogram -----------------------------------------------------------------
@dataclass
class Modes:
    """Peaks of one channel: locations (highest first), their bin counts, and the histogram
    they were found on."""

    locations: np.ndarray
    heights: np.ndarray
    counts: np.ndarray
    edges: np.ndarray


@dataclass
class Channel:
    """One channel of a :class:`~interp_assert.evaluate.streaming.StreamingStats`."""

    counts: np.ndarray
    edges: np.ndarray
    minimum: float
    maximum: float
    mean: float
    std: float
    kurtosis: float
    n: int
    nonfinite: int
    exact_below: dict[float, float] = field(default_factory=dict)
    _modes: Modes | None = None

    @classmethod
    def of(cls, stats: StreamingStats, c: int, nonfinite: int | None = None) -> Channel:
        """Channel ``c`` of ``stats``; ``nonfinite`` overrides the stored count (padding)."""
        return channels_of(stats.take([c]), None if nonfinite is None else [nonfinite])[0]

    @property
    def total(self) -> float:
        """Number of finite values (the histogram's total count)."""
        return float(self.counts.sum())

    def cumulative(self, x: np.ndarray | float) -> np.ndarray:
        """Number of values below ``x``: linear within histogram bins whose ends are clipped to
        the exact min and max (so a bin holding the minimum starts there)."""
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        edges = np.clip(self.edges, self.minimum, self.maximum)
        out = np.interp(x, edges, cdf)
        out = np.where(np.asarray(x) <= self.minimum, 0.0, out)
        return np.where(np.asarray(x) > self.maximum, self.total, out)

    def quantile(self, q: float) -> float:
        """Approximate quantile (linear within a bin), clipped to the exact min/max."""
        if self.total == 0:
            return math.nan
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        k = int(np.clip(np.searchsorted(cdf, q * self.total, side="left"), 1, len(cdf) - 1))
        inside = cdf[k] - cdf[k - 1]
        step = (q * self.total - cdf[k - 1]) / inside if inside > 0 else 0.0
        value = self.edges[k - 1] + step * (self.edges[k] - self.edges[k - 1])
        return float(np.clip(value, self.minimum, self.maximum))

    def fraction(self, var: str, op: str, threshold: float) -> tuple[float, bool]:
        """Fraction of values with ``var op threshold`` and whether it is exact (a registered
        threshold, or one outside the values' range)."""
        if self.n == 0:
            return math.nan, True
        if var == "|x|" and threshold in self.exact_below:
            below = self.exact_below[threshold]
            return (below if op in ("<", "<=") else 1.0 - below), op in ("<", ">=")
        if var == "|x|":
            inside = self.cumulative(threshold) - self.cumulative(-threshold)
            value = float(max(inside, 0.0)) / self.total if threshold > 0 else 0.0
            largest = max(abs(self.minimum), abs(self.maximum))
            exact = bool(threshold > largest or threshold <= 0)
        else:
            value = float(self.cumulative(threshold)) / self.total
            exact = bool(threshold < self.minimum or threshold > self.maximum)
        return (value if op in ("<", "<=") else 1.0 - value), exact

    def modes(self) -> Modes:
        """Significant peaks of the histogram (see the module docstring)."""
        if self._modes is None:
            self._modes = self._find_modes()
        return self._modes

    def _find_modes(self) -> Modes:
        """Peaks of a rebinned histogram of the central values, highest first."""
        from scipy.signal import find_peaks

        empty = np.array([])
        if self.total == 0:
            return Modes(empty, empty, empty, np.array([0.0, 1.0]))
        if not self.maximum > self.minimum:
            point = np.array([self.minimum])
            width = max(abs(self.minimum) * 1e-6, 1e-9)
            return Modes(point, np.array([self.total]), np.array([self.total]),
                         np.array([self.minimum - width, self.minimum + width]))
        low, high = self.quantile(CENTRAL), self.quantile(1 - CENTRAL)
        if not high > low:
            low, high = self.minimum, self.maximum
        fine_width = float(self.edges[1] - self.edges[0])
        fine_bins = max(1, round((high - low) / fine_width))
        bins = int(min(np.clip(round(2 * self.total ** (1 / 3)), 8, MAX_BINS), fine_bins))
        edges = np.linspace(low, high, bins + 1)
        counts = np.diff(self.cumulative(edges))
        padded = np.concatenate([[0.0], counts, [0.0]])
        # a tiny ramp breaks ties, so of two equal peaks only one gets the full prominence
        ramp = 1e-9 * max(counts.max(), 1.0) * np.arange(padded.size) / padded.size
        found, props = find_peaks(padded + ramp, prominence=0)
        heights = padded[found]
        prominence = np.minimum(props["prominences"], heights)
        noise = PEAK_SIGMAS * np.sqrt(heights + (heights - prominence))
        keep = prominence >= np.maximum(PEAK_PROMINENCE * counts.max(), noise)
        keep[np.argmax((padded + ramp)[found])] = True  # the highest peak always counts
        found, heights = found[keep] - 1, heights[keep]
        order = np.argsort(-heights, kind="stable")
        found, heights = found[order], heights[order]
        smooth = self._smoothed(max(0.5, SMOOTH * (high - low) / bins / fine_width))
        locations = [self._locate(i, edges, smooth) for i in found]
        return Modes(np.array(locations), heights, counts, edges)

    def _smoothed(self, sigma: float) -> np.ndarray:
        """The fine counts smoothed by a gaussian of ``sigma`` bins, reflected at the bins
        holding the exact min and max (so a mode at an edge of the support stays there)."""
        from scipy.ndimage import gaussian_filter1d

        first = int(np.clip(np.searchsorted(self.edges, self.minimum, "right") - 1, 0,
                            len(self.counts) - 1))
        last = int(np.clip(np.searchsorted(self.edges, self.maximum, "left") - 1, first,
                           len(self.counts) - 1))
        out = np.zeros_like(self.counts)
        out[first:last + 1] = gaussian_filter1d(self.counts[first:last + 1], sigma,
                                                mode="reflect")
        return out

    def _locate(self, i: int, edges: np.ndarray, smooth: np.ndarray) -> float:
        """Where coarse peak ``i`` is: the highest smoothed fine bin near it, or the exact
        minimum (maximum) when the fine bin holding it has the most raw counts there."""
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        bins = len(edges) - 1
        window = np.flatnonzero((self.edges[1:] > edges[max(i - 1, 0)])
                                & (self.edges[:-1] < edges[min(i + 2, bins)]))
        if not window.size:
            return float(np.clip((edges[i] + edges[i + 1]) / 2, self.minimum, self.maximum))
        raw_best = window[np.argmax(self.counts[window])]
        for extreme in (self.minimum, self.maximum):
            if self.edges[raw_best] <= extreme <= self.edges[raw_best + 1]:
                return extreme
        best = window[np.argmax(smooth[window])]
        return float(np.clip(centres[best], self.minimum, self.maximum))


def channels_of(stats: StreamingStats, nonfinite: Any = None) -> list[Channel]:
    """Every channel of ``stats``; ``nonfinite`` (per channel) overrides the stored NaN/inf
    counts, for statistics padded with NaN."""
    n = stats.finite_n
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, std, kurtosis = stats.mean(), stats.std(), stats.kurtosis()
    bad = stats.nonfinite if nonfinite is None else np.asarray(nonfinite).reshape(-1)
    out = []
    for c in range(stats.channels):
        exact = {t: float(stats.below[i, c]) / n[c] for i, t in enumerate(stats.thresholds)
                 if n[c] > 0}
        edges = stats.edges(c) if n[c] > 0 else np.linspace(0.0, 1.0, stats.bins + 1)
        out.append(Channel(np.asarray(stats.counts[c], dtype=np.float64), edges,
                           float(stats.minimum[c]), float(stats.maximum[c]), float(mean[c]),
                           float(std[c]), float(kurtosis[c]), int(n[c]), int(bad[c]), exact))
    return out


# -- the channels of a quantity --------------------------------------------------------------
def channel_stats(value: Labelled, noun: str | None, shown: str
                  ) -> tuple[StreamingStats, list[str], str, np.ndarray | None, str]:
    """Streaming statistics, channel labels, axis name, per-channel NaN/inf counts (when the
    stats were padded) and a note, for a quantity.

    ``noun`` is the quantified word (``every neuron of ...``): it must name the channel axis
    loosely (``neurons`` for axis ``neuron``; generic words such as ``channels`` always do).
    """
    stats = value.meta.get("stats")
    nonfinite = value.meta.get("nonfinite")
    if isinstance(stats, StreamingStats):
        if value.ndim == 0:
            labels, axis_name = [shown], "channel"
        elif value.ndim == 1 and value.shape[0] == stats.channels:
            labels, axis_name = value.labels_of(0), value.axes[0].name
        else:
            raise QuantityError(f"'{shown}' has shape {value.shape} but statistics of "
                                f"{stats.channels} channels")
        if noun is not None:
            _check_noun(noun, axis_name, shown)
        counts = None if nonfinite is None else np.asarray(nonfinite).reshape(-1)
        return stats, labels, axis_name, counts, ""
    if value.ndim == 0:
        raise QuantityError(f"'{shown}' is a single number, not a distribution",
                            hint="use a 'distribution:' quantity, a table with 'as: "
                                 "distribution', or a quantity of samples")
    if noun is None:
        stats = samples_to_stats(value.values.reshape(-1, 1))
        note = f"pooled {value.values.size} values of '{shown}' into one distribution"
        return stats, [shown], "channel", None, note
    if value.ndim == 1:
        raise QuantityError(
            f"'{shown}' holds one value per {value.axes[0].name}, not a distribution per "
            f"{singular(noun)}", hint="use a 'distribution:' quantity, a table with 'as: "
            "distribution' and 'group_by', or an activation with a channel axis")
    axis = _channel_axis(value, noun)
    moved = np.moveaxis(value.values, axis, -1)
    stats = samples_to_stats(moved.reshape(-1, moved.shape[-1]))
    note = (f"{moved.size // moved.shape[-1]} values per {value.axes[axis].name} of '{shown}' "
            "pooled over its other axes")
    return stats, value.labels_of(axis), value.axes[axis].name, None, note


def _channel_axis(value: Labelled, noun: str) -> int:
    """The axis of raw samples that ``noun`` names (generic nouns: the last axis)."""
    for i, axis in enumerate(value.axes):
        if axis.matches(noun):
            return i
    if singular(noun) in _GENERIC_NOUNS:
        return value.ndim - 1
    names = [a.name for a in value.axes]
    raise QuantityError(f"'{value.name}' has no axis '{noun}' (axes: {', '.join(names)})",
                        hint=f"say e.g. 'every {names[-1]} of {value.name}'")


def _check_noun(noun: str, axis_name: str, shown: str) -> None:
    """Refuse a quantified noun that does not name the statistics' channel axis."""
    word, axis = singular(noun), singular(axis_name)
    if word in _GENERIC_NOUNS or word in axis or axis in word:
        return
    raise QuantityError(f"'{shown}' is a distribution per {axis_name}, not per {word}",
                        hint=f"write 'every {axis_name} of {shown} ...' (or 'every channel')")


def samples_to_stats(samples: np.ndarray, bins: int = 1024, thresholds: tuple[float, ...] = (),
                     chunk: int = 65536) -> StreamingStats:
    """Streaming statistics of ``samples [n, channels]``, fed in chunks."""
    samples = np.asarray(samples, dtype=np.float64)
    stats = StreamingStats(samples.shape[1], bins, thresholds)
    for start in range(0, samples.shape[0], chunk):
        stats.update(samples[start:start + chunk])
    return stats


# -- expression functions --------------------------------------------------------------------
def _stats_of(x: Labelled, what: str) -> tuple[StreamingStats, np.ndarray | None]:
    """The streaming statistics of a distribution quantity and its per-channel NaN/inf counts."""
    stats = x.meta.get("stats")
    if not isinstance(stats, StreamingStats):
        raise QuantityError(f"{what}() needs a distribution quantity; '{x.name}' has no "
                            "streaming statistics", hint="use a 'distribution:' quantity or a "
                            "table with 'as: distribution'")
    nonfinite = x.meta.get("nonfinite")
    return stats, None if nonfinite is None else np.asarray(nonfinite).reshape(-1)


@register_function("peak")
def peak(x: Labelled) -> Labelled:
    """Location of the highest histogram peak of each channel of a distribution quantity."""
    stats, bad = _stats_of(x, "peak")
    out = [ch.modes().locations[0] if ch.n and len(ch.modes().locations) else math.nan
           for ch in channels_of(stats, bad)]
    return Labelled(np.array(out).reshape(x.shape), x.axes, x.name)


@register_function("npeaks")
def npeaks(x: Labelled) -> Labelled:
    """Number of significant histogram peaks of each channel of a distribution quantity."""
    stats, bad = _stats_of(x, "npeaks")
    out = [len(ch.modes().locations) for ch in channels_of(stats, bad)]
    return Labelled(np.array(out, dtype=float).reshape(x.shape), x.axes, x.name)


__all__ = ["Channel", "Modes", "channel_stats", "channels_of", "npeaks", "peak",
           "samples_to_stats"]
