"""Distribution claims: unimodality, peak location, fractions and moments of per-channel
distributions, read from streaming histograms.

The subject is a ``distribution:`` quantity (one channel picked by label, ``post[L1N5]``, or
all of its channels), a table quantity with ``as: distribution``, or any quantity of raw
samples (pooled into one distribution; quantified forms take the channel axis by name)::

    post[L1N5] is unimodal
    post[L1N5] is multimodal
    post[L1N5] peaks near 0 within 0.1 std          # the highest peak within 0.1 × std of 0
    post[L1N5] peaks near 0 within 0.05             # an absolute tolerance
    post[L1N5] has fraction |x| < 0.1 >= 0.9        # also |x| >, x <, x >; '< 0.5 std' too
    post[L1N5] has kurtosis in [2, 10]              # excess (Fisher) kurtosis, as scipy's
    post[L1N5] has mean > 0                         # mean std min max median peak peaks
    post[L1N5] has quantile 0.99 < 3
    every neuron of post is unimodal                # also: each, all (plural verbs)
    mostly neurons of post peak near 0 within 0.1 std          # at least 90% of them
    at least 80% of neurons of post have fraction |x| < 0.1 >= 0.9
    at most 5% of neurons of post are multimodal
    at least 200 of neurons of post have kurtosis > 3          # a count, without %

Verbs agree loosely (is/are, has/have, peak/peaks). A distribution with several channels and
no quantifier means every channel. NaN or inf in a channel, or an empty channel, never holds.

Peaks are found on a histogram of the central 99.8% of the values, rebinned from the streaming
histogram to ``2·n^(1/3)`` bins (at most 64; zero-padded so an edge can be a peak); a peak
counts when its prominence is at least 5% of the highest bin and 3 Poisson standard deviations.
Peak locations are refined on the smoothed fine histogram and clipped to the exact min/max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, compare, fmt
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Labelled, singular
from interp_assert.language import ast

if TYPE_CHECKING:
    from collections.abc import Iterator

    from matplotlib.axes import Axes

MOSTLY = 0.9
"""The share of channels that ``mostly`` requires."""

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
_X_STATS = frozenset({"mean", "min", "max", "median", "quantile", "peak"})


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


# -- claim pieces ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Statistic:
    """What ``has ...`` measures: a moment, a quantile, a peak, or a fraction of values."""

    name: str
    argument: ast.Node | None = None
    var: str = "|x|"
    op: str = "<"
    relative: bool = False

    def __str__(self) -> str:
        if self.name == "fraction":
            unit = " std" if self.relative else ""
            return f"fraction {self.var} {self.op} {self.argument}{unit}"
        if self.name == "quantile":
            return f"quantile {self.argument}"
        return self.name



def margin(value: float, comparison: ast.Comparison, bound: float,
           upper: float | None = None) -> float:
    """How far ``value`` is inside (positive) or outside (negative) the comparison."""
    if not math.isfinite(value):
        return -math.inf
    op = comparison.op
    if op in (">", ">="):
        return value - bound
    if op in ("<", "<="):
        return bound - value
    if op == "in":
        return min(value - bound, upper - value)  # type: ignore[operator]
    if op == "≈":
        return upper - abs(value - bound)  # type: ignore[operator]
    return -abs(value - bound) if op == "==" else abs(value - bound)


@dataclass
class Judged:
    """One channel's statistic and verdict."""

    label: str
    value: float
    holds: bool
    margin: float
    detail: str
    channel: Channel
    extra: dict[str, Any] = field(default_factory=dict)


@register_claim
@dataclass
class DistributionClaim(Claim):
    """``[every|mostly|at least P of] NOUN of X`` + ``is unimodal`` / ``peaks near A within T
    [std]`` / ``has STATISTIC comparison`` (see the module docstring for every form)."""

    kind = "distribution"
    grammar = r"""distribution: dist_who dist_what
dist_who: expr                                       -> dist_one
    | DIST_EVERY NAME "of" expr                      -> dist_every
    | DIST_MOSTLY NAME "of" expr                     -> dist_mostly
    | DIST_BOUND number "of" NAME "of" expr          -> dist_share
dist_what: DIST_BE DIST_MODAL                        -> dist_modal
    | DIST_PEAK "near" expr "within" expr [DIST_STD] -> dist_peak
    | DIST_HAVE dist_stat comparison                 -> dist_has
dist_stat: DIST_MOMENT                               -> dist_moment
    | "quantile" number                              -> dist_quantile
    | "fraction" ["of"] DIST_X DIST_CMP expr [DIST_STD] -> dist_fraction
DIST_EVERY: /(every|each|all)\b/
DIST_MOSTLY: /(mostly|most)\b/
DIST_BOUND: /at\s+(least|most)\b/
DIST_BE: /(is|are)\b/
DIST_MODAL: /(unimodal|multimodal)\b/
DIST_PEAK: /peaks?\b/
DIST_HAVE: /(has|have)\b/
DIST_STD: /(std|σ)(?![\w.])/
DIST_MOMENT: /((excess\s+)?kurtosis|mean|std|min|max|median|peaks|peak)\b/
DIST_X: /\|x\||x\b/
DIST_CMP: /<=|>=|[<>≤≥]/"""

    source: ast.Node
    predicate: str
    quantifier: str | None = None
    noun: str | None = None
    share: ast.Number | None = None
    target: ast.Node | None = None
    tolerance: ast.Node | None = None
    relative: bool = False
    statistic: Statistic | None = None
    comparison: ast.Comparison | None = None

    @classmethod
    def build(cls, children: list[Any]) -> DistributionClaim:
        who, what = children
        kwargs: dict[str, Any] = {}
        if who.data == "dist_one":
            kwargs["source"] = who.children[0]
        elif who.data == "dist_share":
            bound, share, noun, source = who.children
            kwargs.update(quantifier=" ".join(str(bound).split()), share=share, noun=str(noun),
                          source=source)
        else:
            word, noun, source = who.children
            kwargs.update(quantifier=str(word), noun=str(noun), source=source)
        if what.data == "dist_modal":
            kwargs["predicate"] = str(what.children[1])
        elif what.data == "dist_peak":
            _verb, target, tolerance, std = what.children
            kwargs.update(predicate="peak", target=target, tolerance=tolerance,
                          relative=std is not None)
        else:
            _verb, stat, comparison = what.children
            if comparison.confidence is not None:
                raise InterpAssertError("distribution statistics have no confidence intervals; "
                                        "drop 'with ... confidence'")
            kwargs.update(predicate="has", statistic=_statistic(stat), comparison=comparison)
        return cls(**kwargs)

    # -- text --------------------------------------------------------------------------------
    def _plural(self) -> bool:
        return self.quantifier is not None and self.quantifier not in ("every", "each")

    def predicate_text(self, plural: bool | None = None) -> str:
        """The predicate with verbs agreeing with the subject."""
        plural = self._plural() if plural is None else plural
        if self.predicate in ("unimodal", "multimodal"):
            return f"{'are' if plural else 'is'} {self.predicate}"
        if self.predicate == "peak":
            unit = " std" if self.relative else ""
            return (f"{'peak' if plural else 'peaks'} near {self.target} within "
                    f"{self.tolerance}{unit}")
        return f"{'have' if plural else 'has'} {self.statistic} {self.comparison}"

    def __str__(self) -> str:
        if self.quantifier is None:
            who = str(self.source)
        elif self.share is not None:
            who = f"{self.quantifier} {self.share} of {self.noun} of {self.source}"
        else:
            who = f"{self.quantifier} {self.noun} of {self.source}"
        return f"{who} {self.predicate_text()}"

    def expressions(self) -> Iterator[ast.Node | ast.Members]:
        yield self.source
        for node in (self.target, self.tolerance):
            if node is not None:
                yield node
        if self.statistic is not None and self.statistic.argument is not None:
            yield self.statistic.argument
        if self.comparison is not None:
            yield self.comparison.value
            if self.comparison.upper is not None:
                yield self.comparison.upper

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, ctx: Context) -> Outcome:
        value = ctx.value(self.source)
        stats, labels, axis_name, nonfinite, note = channel_stats(
            value, self.noun if self.quantifier else None, str(self.source))
        channels = channels_of(stats, nonfinite)
        judge, numbers = self._judge_function(ctx)
        judged = [judge(label, channel) for label, channel in zip(labels, channels)]
        notes = [note] if note else []
        if any(j.channel.nonfinite for j in judged):
            bad = sum(1 for j in judged if j.channel.nonfinite)
            notes.append(f"{bad} channel(s) hold NaN or inf values; they never hold")
        approximate = [j for j in judged if j.extra.get("approximate")]
        if approximate:
            width = float(approximate[0].channel.edges[1] - approximate[0].channel.edges[0])
            notes.append(f"fraction read from the histogram (bin width {fmt(width)}); list the "
                         "threshold under the quantity's 'thresholds:' for an exact count")
        if len(judged) == 1 and self.quantifier is None:
            outcome = self._single(judged[0])
        else:
            if self.quantifier is None:
                notes.append(f"no quantifier: every one of the {len(judged)} channels must hold")
            outcome = self._quantified(judged, axis_name)
        outcome.notes.extend(notes)
        outcome.context.update(value.meta.get("context", {}))
        outcome.plot_data.update(self._plot_data(judged, axis_name, numbers))
        return outcome

    def _judge_function(self, ctx: Context) -> tuple[Any, dict[str, Any]]:
        """The per-channel judge and the claim's evaluated numbers."""
        if self.predicate in ("unimodal", "multimodal"):
            return self._judge_modal, {}
        if self.predicate == "peak":
            assert self.target is not None and self.tolerance is not None
            target, tolerance = ctx.scalar(self.target), ctx.scalar(self.tolerance)
            return (lambda label, ch: self._judge_peak(label, ch, target, tolerance),
                    {"target": target, "tolerance": tolerance})
        assert self.statistic is not None and self.comparison is not None
        argument = (ctx.scalar(self.statistic.argument)
                    if self.statistic.argument is not None else None)
        bound = ctx.scalar(self.comparison.value)
        upper = ctx.scalar(self.comparison.upper) if self.comparison.upper is not None else None
        return (lambda label, ch: self._judge_stat(label, ch, argument, bound, upper),
                {"argument": argument, "bound": bound, "upper": upper})

    def _judge_modal(self, label: str, ch: Channel) -> Judged:
        modes = ch.modes()
        count = len(modes.locations)
        at = ", ".join(fmt(x) for x in modes.locations[:5])
        detail = f"{count} peak{'s' if count != 1 else ''}" + (f" at {at}" if count else "")
        if self.predicate == "unimodal":
            holds, edge = count == 1, -abs(count - 1)
        else:
            holds, edge = count >= 2, count - 2
        return _finish(label, float(count), holds, float(edge) if count else -math.inf, detail,
                       ch, {"peaks": at})

    def _judge_peak(self, label: str, ch: Channel, target: float, tolerance: float) -> Judged:
        modes = ch.modes()
        if not len(modes.locations):
            return _finish(label, math.nan, False, -math.inf, "no values", ch)
        location = float(modes.locations[0])
        distance = abs(location - target)
        allowed = tolerance * ch.std if self.relative else tolerance
        value = distance / ch.std if self.relative and ch.std > 0 else distance
        if self.relative and ch.std == 0:
            value = 0.0 if distance == 0 else math.inf
        holds = bool(math.isfinite(allowed) and distance <= allowed)
        unit = " std" if self.relative else ""
        detail = f"highest peak at {fmt(location)}, {fmt(value)}{unit} from {fmt(target)}"
        scale = ch.std if self.relative and ch.std > 0 else 1.0
        return _finish(label, value, holds, (allowed - distance) / scale, detail, ch,
                       {"peak at": location})

    def _judge_stat(self, label: str, ch: Channel, argument: float | None, bound: float,
                    upper: float | None) -> Judged:
        assert self.statistic is not None and self.comparison is not None
        stat = self.statistic
        extra: dict[str, Any] = {}
        if stat.name == "fraction":
            assert argument is not None
            threshold = argument * ch.std if stat.relative else argument
            value, exact = ch.fraction(stat.var, stat.op, threshold)
            extra["approximate"] = not exact
        elif stat.name == "quantile":
            assert argument is not None
            if not 0 <= argument <= 1:
                raise QuantityError(f"quantile {fmt(argument)} is not between 0 and 1",
                                    hint="write e.g. 'quantile 0.99' or 'quantile 99%'")
            value = ch.quantile(argument)
        elif stat.name == "median":
            value = ch.quantile(0.5)
        elif stat.name in ("peak", "peaks"):
            modes = ch.modes()
            count = len(modes.locations)
            if stat.name == "peaks":
                value = float(count)
            else:
                value = float(modes.locations[0]) if count else math.nan
        else:
            value = {"kurtosis": ch.kurtosis, "mean": ch.mean, "std": ch.std,
                     "min": ch.minimum, "max": ch.maximum}[stat.name]
            if ch.n == 0:
                value = math.nan
        holds = compare(value, self.comparison, bound, upper)
        return _finish(label, value, holds, margin(value, self.comparison, bound, upper),
                       f"{stat} = {fmt(value)}", ch, extra)

    def _required(self, total: int) -> tuple[str, Any]:
        """(text, test) of the share of channels that must hold."""
        if self.quantifier in ("every", "each", "all", None):
            return "all", lambda held, _bad: held == total
        if self.quantifier in ("mostly", "most"):
            return (f"at least {MOSTLY:.0%}",
                    lambda held, _bad: held >= MOSTLY * total - 1e-9)
        assert self.share is not None
        share = self.share
        is_count = share.unit is None and share.value >= 1 and share.value == int(share.value)
        need = share.value if is_count else share.value * total
        text = (f"{self.quantifier} {int(share.value)}" if is_count
                else f"{self.quantifier} {fmt(share.value * 100)}%")
        if self.quantifier == "at least":
            return text, lambda held, _bad: held >= need - 1e-9
        return text, lambda held, bad: held + bad <= need + 1e-9

    def _single(self, j: Judged) -> Outcome:
        expected = self._expected(plural=False)
        row = _row(j, "channel")
        return Outcome(j.holds, j.detail, expected, value=j.value, rows=[row])

    def _quantified(self, judged: list[Judged], axis_name: str) -> Outcome:
        total = len(judged)
        held = sum(j.holds for j in judged)
        bad = sum(1 for j in judged if not math.isfinite(j.value) or j.channel.nonfinite)
        text, test = self._required(total)
        passed = bool(test(held, bad))
        nouns = _plural(self.noun or axis_name)
        expected = f"{text} of the {total} {nouns}: {self._expected(plural=False)}"
        at_most = self.quantifier == "at most"
        worst = _worst(judged, at_most)
        share = (held + bad) / total if at_most else held / total
        if at_most:
            which = "e.g." if held else "closest"
        else:
            which = "worst" if held < total else "closest to failing"
        measured = (f"{held}/{total} {nouns} ({share:.1%}) hold"
                    + (f" ({bad} not finite)" if at_most and bad else "")
                    + f"; {which} {worst.label}: {worst.detail}")
        order = sorted(judged, key=lambda j: (_fine(j, at_most), -j.margin if at_most
                                              else j.margin))
        rows = [_row(j, axis_name, _fine(j, at_most)) for j in order]
        return Outcome(passed, measured, expected, value=share, rows=rows)

    def _expected(self, plural: bool) -> str:
        if self.predicate in ("unimodal", "multimodal"):
            return self.predicate
        if self.predicate == "peak":
            unit = " std" if self.relative else ""
            return f"highest peak within {self.tolerance}{unit} of {self.target}"
        return f"{self.statistic} {self.comparison}"

    # -- plot --------------------------------------------------------------------------------
    def _plot_data(self, judged: list[Judged], axis_name: str,
                   numbers: dict[str, Any]) -> dict[str, Any]:
        worst = _worst(judged, self.quantifier == "at most")
        ch = worst.channel
        modes = ch.modes()
        shown = worst.label if axis_name == "channel" else f"{axis_name} {worst.label}"
        data: dict[str, Any] = {
            "label": shown, "counts": modes.counts.tolist(),
            "edges": modes.edges.tolist(), "peaks": modes.locations.tolist(),
            "mean": ch.mean, "std": ch.std, "detail": worst.detail, "holds": worst.holds,
            "axis": axis_name, **self._markers(worst, numbers),
        }
        if len(judged) > 1:
            data["strip"] = {"labels": [j.label for j in judged],
                             "values": [j.value for j in judged],
                             "holds": [_fine(j, self.quantifier == "at most")
                                       for j in judged]}
        return data

    def _markers(self, j: Judged, ctx_values: dict[str, float]) -> dict[str, Any]:
        """Threshold lines and bands (in value units) for the histogram of channel ``j``."""
        ch = j.channel
        lines: list[tuple[float, str, str]] = []
        band = None
        if self.predicate == "peak":
            target, tolerance = ctx_values["target"], ctx_values["tolerance"]
            allowed = tolerance * ch.std if self.relative else tolerance
            lines.append((target, "--", f"target {fmt(target)}"))
            if math.isfinite(allowed):
                band = (target - allowed, target + allowed, f"within {self.tolerance}"
                        + (" std" if self.relative else ""))
        elif self.statistic is not None and self.statistic.name == "fraction":
            t = ctx_values["argument"] * (ch.std if self.statistic.relative else 1.0)
            if math.isfinite(t):
                for i, x in enumerate((-t, t) if self.statistic.var == "|x|" else (t,)):
                    lines.append((x, ":", "" if i else f"{self.statistic.var} = {fmt(t)}"))
        elif self.statistic is not None and self.statistic.name in _X_STATS:
            bound, upper = ctx_values["bound"], ctx_values.get("upper")
            if math.isfinite(j.value):
                lines.append((j.value, "-", f"{self.statistic} = {fmt(j.value)}"))
            lines.append((bound, "--", f"bound {fmt(bound)}"))
            if upper is not None:
                lines.append((upper, ":", f"upper {fmt(upper)}"))
        return {"lines": lines, "band": band}

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        if data.get("strip"):
            ax, strip_ax = _split(ax)
            _strip(strip_ax, data["strip"], self._strip_title())
        counts = np.asarray(data["counts"], dtype=float)
        edges = np.asarray(data["edges"], dtype=float)
        if counts.size:
            ax.stairs(np.maximum(counts, 0.5), edges, fill=True, alpha=0.5, color="C0",
                      baseline=0.5)
            ax.set_yscale("log")
        for i, x in enumerate(data["peaks"]):
            ax.axvline(x, color="C3", linewidth=1.5, label="peaks" if i == 0 else None)
        for x, style, label in outcome.plot_data.get("lines", []):
            ax.axvline(x, color="k", linestyle=style, label=label or None)
        if data.get("band"):
            low, high, label = data["band"]
            ax.axvspan(low, high, color="C2", alpha=0.2, label=label)
        ax.set_xlabel(f"value ({data['label']})")
        ax.set_ylabel("count (log)")
        verdict = "holds" if data["holds"] else "fails"
        ax.set_title(f"{data['label']} ({verdict}): {data['detail']}", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)

    def _strip_title(self) -> str:
        if self.predicate in ("unimodal", "multimodal"):
            return "peaks per channel"
        if self.predicate == "peak":
            return "peak distance" + (" (std)" if self.relative else "")
        return str(self.statistic)


def _finish(label: str, value: float, holds: bool, edge: float, detail: str, ch: Channel,
            extra: dict[str, Any] | None = None) -> Judged:
    """A channel's verdict; NaN/inf statistics or values and empty channels never hold."""
    if ch.nonfinite:
        holds, edge = False, -math.inf
        detail += f" ({ch.nonfinite} NaN/inf values)"
    if ch.n == 0:
        holds, edge, detail = False, -math.inf, "no finite values"
    if not math.isfinite(value):
        holds = False
    if math.isnan(edge):
        edge = -math.inf
    return Judged(label, value, bool(holds), edge, detail, ch, extra or {})


def _worst(judged: list[Judged], at_most: bool) -> Judged:
    """The channel furthest on the failing side (for 'at most': the one that holds most)."""
    if at_most:
        return max(judged, key=lambda j: j.margin)
    return min(judged, key=lambda j: j.margin)


def _plural(noun: str) -> str:
    """'neuron' -> 'neurons' for plain words; other names stay as they are."""
    return f"{noun}s" if noun.isalpha() and noun.islower() and not noun.endswith("s") else noun


def _fine(j: Judged, at_most: bool) -> bool:
    """Whether channel ``j`` does not count against the claim ('at most': it lacks the
    property and is finite; otherwise: it has the property)."""
    if at_most:
        return not (j.holds or not math.isfinite(j.value) or j.channel.nonfinite)
    return j.holds


def _row(j: Judged, axis_name: str, fine: bool | None = None) -> dict[str, Any]:
    """A report row; ``holds`` is False for channels that count against the claim."""
    row: dict[str, Any] = {axis_name or "channel": j.label, "statistic": j.detail,
                           "value": j.value}
    if j.channel.nonfinite:
        row["non-finite"] = j.channel.nonfinite
    row["holds"] = j.holds if fine is None else fine
    return row


def _statistic(tree: Any) -> Statistic:
    if tree.data == "dist_moment":
        name = str(tree.children[0]).split()[-1]
        return Statistic(name)
    if tree.data == "dist_quantile":
        return Statistic("quantile", tree.children[0])
    var, op, threshold, std = tree.children
    return Statistic("fraction", threshold, str(var), ast.comparison_op(op), std is not None)


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
    for i, axis in enumerate(value.axes):
        if axis.matches(noun):
            return i
    if singular(noun) in _GENERIC_NOUNS:
        return value.ndim - 1
    names = [a.name for a in value.axes]
    raise QuantityError(f"'{value.name}' has no axis '{noun}' (axes: {', '.join(names)})",
                        hint=f"say e.g. 'every {names[-1]} of {value.name}'")


def _check_noun(noun: str, axis_name: str, shown: str) -> None:
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


# -- plotting helpers ------------------------------------------------------------------------
def _split(ax: Axes) -> tuple[Axes, Axes]:
    """Replace ``ax`` by a histogram panel above a strip panel."""
    figure = ax.figure
    spec = ax.get_subplotspec()
    ax.remove()
    grid = spec.subgridspec(2, 1, height_ratios=[3, 1])
    return figure.add_subplot(grid[0]), figure.add_subplot(grid[1])


def _strip(ax: Axes, strip: dict[str, Any], title: str) -> None:
    values = np.asarray(strip["values"], dtype=float)
    x = np.arange(values.size)
    colors = np.where(np.asarray(strip["holds"]), "C2", "C3")
    shown = np.where(np.isfinite(values), values, np.nan)
    ax.scatter(x, shown, c=colors, s=8 if values.size > 64 else 16)
    bad = ~np.isfinite(values)
    if bad.any():
        low = np.nanmin(shown) if np.isfinite(shown).any() else 0.0
        ax.scatter(x[bad], np.full(bad.sum(), low), marker="x", color="C3", s=20,
                   label="NaN/inf")
    if values.size <= 40:
        ax.set_xticks(x, strip["labels"], rotation=90, fontsize=6)
    ax.set_ylabel(title, fontsize=7)
    ax.grid(alpha=0.3)


# -- expression functions --------------------------------------------------------------------
def _stats_of(x: Labelled, what: str) -> tuple[StreamingStats, np.ndarray | None]:
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


__all__ = ["Channel", "DistributionClaim", "Modes", "Statistic", "channel_stats", "channels_of",
           "margin", "samples_to_stats"]
