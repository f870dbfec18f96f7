"""Per-channel statistics of streaming statistics: moments, quantiles, fractions of values and
significant peaks of each channel, and the channels of a quantity.

Quantiles and fractions are exact (numpy on the channel's finite samples; quantiles with
``np.quantile``'s ``method``, ``linear`` by default) whenever the samples were kept (see
:data:`interp_assert.evaluate.streaming.KEEP_FRACTION`). Otherwise they are read from the
histogram and come with an error bound (:meth:`Channel.quantile_bounds`,
:meth:`Channel.fraction_bounds`) inside which the true value lies. Peaks are described in
:mod:`interp_assert.evaluate.channel_peaks`. Importing this module registers the expression
functions ``peak`` and ``npeaks``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.channel_peaks import DEFAULT, Modes, PeakSettings, find_modes
from interp_assert.evaluate.head_channels import grid_channels
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.evaluate.streaming import StreamingStats, kurtosis, skewness, variance
from interp_assert.labels import Labelled, singular

QUANTILE_METHODS = ("linear", "lower", "higher", "nearest", "midpoint", "inverted_cdf",
                    "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
                    "hazen", "weibull", "median_unbiased", "normal_unbiased")
"""``np.quantile``'s methods; ``linear`` (numpy's default, type 7) unless a claim says."""

_GENERIC_NOUNS = frozenset({"channel", "element", "member", "group", "unit", "value", "row",
                            "label", "entry", "item"})
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


# -- one channel -----------------------------------------------------------------------------
@dataclass
class Channel:
    """One channel of a :class:`~interp_assert.evaluate.streaming.StreamingStats`.

    ``m2``, ``m3``, ``m4`` are the central moments ``Σ(x - mean)^k / n`` of the finite values;
    ``samples`` the raw values (NaN and inf included) when they were kept, else None."""

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
    m2: float = math.nan
    m3: float = math.nan
    m4: float = math.nan
    samples: np.ndarray | None = None
    dropped: str = ""
    _modes: dict[PeakSettings, Modes] = field(default_factory=dict)
    _finite: np.ndarray | None = None

    @classmethod
    def of(cls, stats: StreamingStats, c: int, nonfinite: int | None = None) -> Channel:
        """Channel ``c`` of ``stats``; ``nonfinite`` overrides the stored count (padding)."""
        return channels_of(stats.take([c]), None if nonfinite is None else [nonfinite])[0]

    @property
    def total(self) -> float:
        """Number of finite values (the histogram's total count)."""
        return float(self.counts.sum())

    @property
    def exact(self) -> bool:
        """Whether quantiles and fractions are computed from the samples themselves."""
        return self.samples is not None

    def finite(self) -> np.ndarray:
        """The finite samples in float64 (only when they were kept)."""
        if self._finite is None:
            assert self.samples is not None
            values = np.asarray(self.samples, dtype=np.float64)
            self._finite = values[np.isfinite(values)]
        return self._finite

    # -- moments ----------------------------------------------------------------------------
    def moment(self, name: str, ddof: int = 0, unbiased: bool = False) -> float:
        """``var``/``std`` with ``ddof``; ``skew``/``kurtosis`` biased (scipy) or ``unbiased``
        (pandas); see :mod:`interp_assert.evaluate.streaming`."""
        if name in ("var", "std"):
            var = float(variance(self.n, self.m2, ddof))
            return var if name == "var" else math.sqrt(var) if var >= 0 else math.nan
        if name == "skew":
            return float(skewness(self.n, self.m2, self.m3, unbiased))
        return float(kurtosis(self.n, self.m2, self.m4, unbiased))

    # -- quantiles --------------------------------------------------------------------------
    def cumulative(self, x: np.ndarray | float) -> np.ndarray:
        """Number of values below ``x`` read from the histogram: linear within bins whose ends
        are clipped to the exact min and max (so a bin holding the minimum starts there)."""
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        edges = np.clip(self.edges, self.minimum, self.maximum)
        out = np.interp(x, edges, cdf)
        out = np.where(np.asarray(x) <= self.minimum, 0.0, out)
        return np.where(np.asarray(x) > self.maximum, self.total, out)

    def histogram_quantile(self, q: float) -> float:
        """Approximate quantile (linear within a bin), clipped to the exact min/max."""
        if self.total == 0:
            return math.nan
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        k = int(np.clip(np.searchsorted(cdf, q * self.total, side="left"), 1, len(cdf) - 1))
        inside = cdf[k] - cdf[k - 1]
        step = (q * self.total - cdf[k - 1]) / inside if inside > 0 else 0.0
        value = self.edges[k - 1] + step * (self.edges[k] - self.edges[k - 1])
        return float(np.clip(value, self.minimum, self.maximum))

    def quantile(self, q: float, method: str = "linear") -> float:
        """The ``q``-quantile of the finite values: exact (``np.quantile(..., method=)``) when
        the samples were kept, else the histogram estimate (see :meth:`quantile_bounds`)."""
        if self.total == 0:
            return math.nan
        if self.exact:
            return float(np.quantile(self.finite(), q, method=method))
        return self.histogram_quantile(q)

    def quantile_bounds(self, q: float, method: str = "linear") -> tuple[float, float]:
        """An interval holding the true ``q``-quantile under every ``np.quantile`` method.

        Every method returns a value between the order statistics ``x_(⌊nq⌋-1)`` and
        ``x_(⌈nq⌉)`` (0-based); each lies in a known histogram bin, widened by one bin on each
        side against rounding in the binning, and clipped to the exact min/max. Exact samples
        give a zero-width interval."""
        if self.total == 0:
            return math.nan, math.nan
        if self.exact:
            value = self.quantile(q, method)
            return value, value
        n = self.total
        k_low = max(0.0, math.floor(n * q) - 1)
        k_high = min(n - 1, math.ceil(n * q))
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        b_low = int(np.searchsorted(cdf, k_low, side="right")) - 1
        b_high = int(np.searchsorted(cdf, k_high, side="right")) - 1
        width = float(self.edges[1] - self.edges[0])
        low = max(self.minimum, float(self.edges[max(b_low, 0)]) - width)
        high = min(self.maximum, float(self.edges[min(b_high + 1, len(self.edges) - 1)]) + width)
        return low, high

    # -- fractions --------------------------------------------------------------------------
    def fraction(self, var: str, op: str, threshold: float) -> tuple[float, bool]:
        """Fraction of the finite values with ``var op threshold`` and whether it is exact
        (kept samples, a registered threshold, or one outside the values' range)."""
        if self.n == 0:
            return math.nan, True
        if self.exact:
            values = self.finite()
            values = np.abs(values) if var == "|x|" else values
            return float(np.mean(_OPS[op](values, threshold))), True
        if var == "|x|" and threshold in self.exact_below:
            below = self.exact_below[threshold]
            return (below if op in ("<", "<=") else 1.0 - below), op in ("<", ">=")
        if var == "|x|" and (threshold < 0 or (threshold == 0 and op in ("<", ">="))):
            value, exact = 0.0, True  # |x| < 0 never holds (|x| <= 0 counts the zeros)
        elif var == "|x|":
            inside = self.cumulative(threshold) - self.cumulative(-threshold)
            value = float(max(inside, 0.0)) / self.total
            exact = bool(threshold > max(abs(self.minimum), abs(self.maximum)))
        else:
            value = float(self.cumulative(threshold)) / self.total
            exact = bool(threshold < self.minimum or threshold > self.maximum)
        return (value if op in ("<", "<=") else 1.0 - value), exact

    def fraction_bounds(self, var: str, op: str, threshold: float) -> tuple[float, float]:
        """An interval holding the true fraction (zero width when it is exact)."""
        value, exact = self.fraction(var, op, threshold)
        if exact or not math.isfinite(value):
            return value, value
        if var == "|x|":
            low_t, high_t = self._below_bounds(threshold)
            low_n, high_n = self._below_bounds(-threshold)
            below = (max(0.0, low_t - high_n), min(self.total, high_t - low_n))
        else:
            below = self._below_bounds(threshold)
        low, high = below[0] / self.total, below[1] / self.total
        return (low, high) if op in ("<", "<=") else (1.0 - high, 1.0 - low)

    def _below_bounds(self, x: float) -> tuple[float, float]:
        """Bounds on the number of values below (or at) ``x`` from the histogram: whole bins
        up to the one holding ``x``, one bin of margin on each side."""
        if x < self.minimum:
            return 0.0, 0.0
        if x > self.maximum:
            return self.total, self.total
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        b = int(np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0,
                        len(self.counts) - 1))
        return float(cdf[max(b - 1, 0)]), float(cdf[min(b + 2, len(cdf) - 1)])

    # -- peaks ------------------------------------------------------------------------------
    def modes(self, settings: PeakSettings = DEFAULT) -> Modes:
        """Significant peaks of the histogram (:mod:`interp_assert.evaluate.channel_peaks`)."""
        if settings not in self._modes:
            self._modes[settings] = find_modes(self, settings)
        return self._modes[settings]


def channels_of(stats: StreamingStats, nonfinite: Any = None) -> list[Channel]:
    """Every channel of ``stats``; ``nonfinite`` (per channel) overrides the stored NaN/inf
    counts, for statistics padded with NaN."""
    n = stats.finite_n
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, std, kurt = stats.mean(), stats.std(), stats.kurtosis()
        _, m2, m3, m4 = stats.central()
    bad = stats.nonfinite if nonfinite is None else np.asarray(nonfinite).reshape(-1)
    samples = stats.samples()
    out = []
    for c in range(stats.channels):
        exact = {t: float(stats.below[i, c]) / n[c] for i, t in enumerate(stats.thresholds)
                 if n[c] > 0}
        edges = stats.edges(c) if n[c] > 0 else np.linspace(0.0, 1.0, stats.bins + 1)
        out.append(Channel(np.asarray(stats.counts[c], dtype=np.float64), edges,
                           float(stats.minimum[c]), float(stats.maximum[c]), float(mean[c]),
                           float(std[c]), float(kurt[c]), int(n[c]), int(bad[c]), exact,
                           float(m2[c]), float(m3[c]), float(m4[c]),
                           None if samples is None else samples[c], stats.dropped))
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
        elif value.ndim > 1 and value.values.size == stats.channels:  # channels head × d_head
            generic = noun is None or singular(noun) in _GENERIC_NOUNS
            stats, labels, axis_name, note = grid_channels(
                value, stats, None if generic else noun, shown)
            return stats, labels, axis_name, None, note
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


__all__ = ["QUANTILE_METHODS", "Channel", "Modes", "PeakSettings", "channel_stats",
           "channels_of", "npeaks", "peak", "samples_to_stats"]
