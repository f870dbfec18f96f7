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
    post[L1N5] has kurtosis (unbiased) > 0          # pandas' kurt(); also skew (unbiased)
    post[L1N5] has mean > 0                         # mean std var skew min max median peak peaks
    post[L1N5] has std (ddof 1) > 0.5               # pandas' std(); numpy's (ddof 0) by default
    post[L1N5] has quantile 0.99 < 3                # np.quantile, method linear by default
    post[L1N5] has quantile 0.9 (lower) <= 0        # any np.quantile method; also median (...)
    post[L1N5] is unimodal (bins 32, prominence 0.1)  # the peak detector's settings
    every neuron of post is unimodal                # also: each, all (plural verbs)
    mostly neurons of post peak near 0 within 0.1 std          # at least 90% of them
    at least 80% of neurons of post have fraction |x| < 0.1 >= 0.9
    at most 5% of neurons of post are multimodal
    at least 200 of neurons of post have kurtosis > 3          # a count, without %

Verbs agree loosely (is/are, has/have, peak/peaks). A distribution with several channels and
no quantifier means every channel. NaN or inf in a channel, or an empty channel, never holds.
Quantiles and fractions are exact while the samples fit the memory limit; read from a
histogram, they decide a verdict only when their error bound does (see
:mod:`interp_assert.claims.distribution_verdicts`). The conventions are in
``docs/definitions.md``.

The numbers come from :mod:`interp_assert.evaluate.channel_stats` (peak finding is described
there) and the verdicts from :mod:`interp_assert.claims.distribution_verdicts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.confidence import BOOTSTRAPPED, attach_units, confident_channels
from interp_assert.claims.distribution_plot import draw_ecdf, ecdf_data
from interp_assert.claims.distribution_verdicts import (
    Judged,
    Statistic,
    check_argument,
    fine,
    judge_modal,
    judge_peak,
    judge_stat,
    options_text,
    parse_options,
    peak_settings,
    quantified,
    single,
    worst,
)
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.evaluate.channel_stats import channel_stats, channels_of
from interp_assert.language import ast

if TYPE_CHECKING:
    from collections.abc import Iterator

    from matplotlib.axes import Axes

_X_STATS = frozenset({"mean", "min", "max", "median", "quantile", "peak"})


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
dist_what: DIST_BE DIST_MODAL [DIST_OPTS]            -> dist_modal
    | DIST_PEAK "near" expr "within" expr [DIST_STD] [DIST_OPTS] -> dist_peak
    | DIST_HAVE dist_stat comparison                 -> dist_has
dist_stat: DIST_MOMENT [DIST_OPTS]                   -> dist_moment
    | "quantile" number [DIST_OPTS]                  -> dist_quantile
    | "fraction" ["of"] DIST_X DIST_CMP expr [DIST_STD] -> dist_fraction
DIST_EVERY: /(every|each|all)\b/
DIST_MOSTLY: /(mostly|most)\b/
DIST_BOUND: /at\s+(least|most)\b/
DIST_BE: /(is|are)\b/
DIST_MODAL: /(unimodal|multimodal)\b/
DIST_PEAK: /peaks?\b/
DIST_HAVE: /(has|have)\b/
DIST_STD: /(std|σ)(?![\w.])/
DIST_MOMENT: /((excess\s+)?kurtosis|skewness|skew|mean|std|var|min|max|median|peaks|peak)\b/
DIST_OPTS: /\([^()]*\)/
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
    peak_options: tuple[tuple[str, Any], ...] = ()

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
            kwargs["peak_options"] = parse_options(what.children[2], "modal")
        elif what.data == "dist_peak":
            _verb, target, tolerance, std, options = what.children
            kwargs.update(predicate="peak", target=target, tolerance=tolerance,
                          relative=std is not None,
                          peak_options=parse_options(options, "modal"))
        else:
            _verb, stat, comparison = what.children
            statistic = _statistic(stat)
            if comparison.confidence is not None and statistic.name not in BOOTSTRAPPED:
                raise InterpAssertError(f"the {statistic.name} of a distribution has no "
                                        "confidence interval; drop 'with ... confidence'")
            kwargs.update(predicate="has", statistic=statistic, comparison=comparison)
        return cls(**kwargs)

    # -- text --------------------------------------------------------------------------------
    def _plural(self) -> bool:
        """Whether the subject reads as plural (a quantifier other than every/each)."""
        return self.quantifier is not None and self.quantifier not in ("every", "each")

    def predicate_text(self, plural: bool | None = None) -> str:
        """The predicate with verbs agreeing with the subject."""
        plural = self._plural() if plural is None else plural
        options = options_text(self.peak_options)
        if self.predicate in ("unimodal", "multimodal"):
            return f"{'are' if plural else 'is'} {self.predicate}{options}"
        if self.predicate == "peak":
            unit = " std" if self.relative else ""
            return (f"{'peak' if plural else 'peaks'} near {self.target} within "
                    f"{self.tolerance}{unit}{options}")
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

    def lean_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        """The source, when it is a quantity named outright and the claim reads no quantile or
        fraction (those are exact only from the raw samples)."""
        if not isinstance(self.source, ast.Ref) or self.source.name not in definitions:
            return set()
        if self.statistic is not None and self.statistic.name in SAMPLE_STATS:
            return set()
        if self.comparison is not None and self.comparison.confidence is not None:
            return set()  # a bootstrap resamples the raw samples
        return {self.source.name}

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, ctx: Context) -> Outcome:
        value = ctx.value(self.source)
        stats, labels, axis_name, nonfinite, note = channel_stats(
            value, self.noun if self.quantifier else None, str(self.source))
        channels = channels_of(stats, nonfinite)
        judge, numbers = self._judge_function(ctx)
        judged = [judge(label, channel) for label, channel in zip(labels, channels)]
        units: dict[str, Any] = {}
        if self.comparison is not None and self.comparison.confidence is not None:
            units = confident_channels(judged, self.statistic, self.comparison,
                                       numbers.get("argument"), numbers["bound"],
                                       numbers.get("upper"), getattr(stats, "unit_rows", 1))
        notes = [note] if note else []
        if any(j.channel.nonfinite for j in judged):
            bad = sum(1 for j in judged if j.channel.nonfinite)
            notes.append(f"{bad} channel(s) hold NaN or inf values; they never hold")
        approximate = [j for j in judged if j.extra.get("approximate")]
        if approximate:
            width = float(approximate[0].channel.edges[1] - approximate[0].channel.edges[0])
            notes.append(f"fraction read from the histogram (bin width {fmt(width)}); list the "
                         "threshold under the quantity's 'thresholds:' for an exact count")
        expected = self._expected()
        if len(judged) == 1 and self.quantifier is None:
            outcome = single(judged[0], expected)
        else:
            if self.quantifier is None:
                notes.append(f"no quantifier: every one of the {len(judged)} channels must hold")
            outcome = quantified(judged, axis_name, self.quantifier, self.share, self.noun,
                                 expected)
        outcome.notes.extend(notes)
        attach_units(outcome, units, judged, self.quantifier)
        outcome.context.update(value.meta.get("context", {}))
        outcome.plot_data.update(self._plot_data(judged, axis_name, numbers))
        return outcome

    def _judge_function(self, ctx: Context) -> tuple[Any, dict[str, Any]]:
        """The per-channel judge and the claim's evaluated numbers."""
        settings = peak_settings(self.peak_options)
        if self.predicate in ("unimodal", "multimodal"):
            predicate = self.predicate
            return lambda label, ch: judge_modal(label, ch, predicate, settings), {}
        if self.predicate == "peak":
            assert self.target is not None and self.tolerance is not None
            target, tolerance = ctx.scalar(self.target), ctx.scalar(self.tolerance)
            if math.isnan(target) or math.isnan(tolerance) or tolerance < 0:
                raise QuantityError(f"'peaks near {self.target} within {self.tolerance}': the "
                                    f"target ({fmt(target)}) and tolerance ({fmt(tolerance)}) "
                                    "must be numbers and the tolerance >= 0",
                                    hint="check their expressions")
            relative = self.relative
            return (lambda label, ch: judge_peak(label, ch, target, tolerance, relative,
                                                 settings),
                    {"target": target, "tolerance": tolerance})
        stat, comparison = self.statistic, self.comparison
        assert stat is not None and comparison is not None
        argument = ctx.scalar(stat.argument) if stat.argument is not None else None
        check_argument(stat, argument)
        bound, upper = evaluate_bounds(ctx, comparison)
        return (lambda label, ch: judge_stat(label, ch, stat, comparison, argument, bound, upper),
                {"argument": argument, "bound": bound, "upper": upper})

    def _expected(self) -> str:
        """What each channel must show, as report text."""
        if self.predicate in ("unimodal", "multimodal"):
            return self.predicate
        if self.predicate == "peak":
            unit = " std" if self.relative else ""
            return f"highest peak within {self.tolerance}{unit} of {self.target}"
        return f"{self.statistic} {self.comparison}"

    # -- plot --------------------------------------------------------------------------------
    def _plot_data(self, judged: list[Judged], axis_name: str,
                   numbers: dict[str, Any]) -> dict[str, Any]:
        """What ``plot`` draws: the worst channel's histogram and peaks, and a strip of every
        channel's statistic when there are several."""
        worst_one = worst(judged, self.quantifier == "at most")
        ch = worst_one.channel
        settings = peak_settings(self.peak_options or (self.statistic.options
                                                       if self.statistic else ()))
        ecdf = ecdf_data(ch, self.statistic, numbers, worst_one.value)
        shown = (worst_one.label if axis_name == "channel"
                 else f"{axis_name} {worst_one.label}")
        data: dict[str, Any] = {
            "label": shown, "mean": ch.mean, "std": ch.std, "detail": worst_one.detail,
            "holds": worst_one.holds, "axis": axis_name, **self._markers(worst_one, numbers),
            "ecdf": ecdf,
        }
        if ecdf is not None:  # the ECDF replaces the histogram (and needs no peak finding)
            data.update(counts=[], edges=[], peaks=[])
        elif self.predicate in ("unimodal", "multimodal", "peak"):  # judging found the peaks
            data.update(_histogram_data(ch, settings))
        else:  # found only when a plot is drawn (finding peaks imports scipy.signal)
            data["histogram"] = (ch, settings)
        if len(judged) > 1:
            data["strip"] = {"labels": [j.label for j in judged],
                             "values": [j.value for j in judged],
                             "holds": [fine(j, self.quantifier == "at most")
                                       for j in judged],
                             "bounds": self._strip_bounds(numbers)}
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
        """The worst channel's histogram with its peaks and thresholds, or for fractions and
        quantiles its empirical CDF (and the strip of every channel)."""
        data = outcome.plot_data
        from interp_assert.claims.distribution_plot import histogram, split, strip

        if data.get("strip"):
            ax, strip_ax = split(ax)
            strip(strip_ax, data["strip"], self._strip_title())
        from interp_assert.claims.plots import FAIL, nan_notice

        if data.get("ecdf"):  # fractions and quantiles: the empirical CDF, threshold marked
            draw_ecdf(ax, data["ecdf"], data["holds"])
            if outcome.value is not None and not math.isfinite(outcome.value):
                nan_notice(ax, "the statistic is NaN: never passes", where=(0.5, 0.8))
        else:
            if "histogram" in data:  # peaks are found only now (scipy.signal is imported)
                data.update(_histogram_data(*data.pop("histogram")))
            histogram(ax, data, outcome.value)
        if data.get("band"):
            low, high, label = data["band"]
            ax.axvspan(low, high, color="C2", alpha=0.2, label=label)
        shown = data["ecdf"]["xlabel"] if data.get("ecdf") else "value"
        ax.set_xlabel(f"{shown} ({data['label']})")
        verdict = "holds" if data["holds"] else "fails"
        ax.set_title(f"{data['label']} ({verdict}): {data['detail']}", fontsize=9,
                     color="black" if data["holds"] else FAIL)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)

    def _strip_bounds(self, numbers: dict[str, Any]) -> list[float]:
        """The bounds each channel's strip value is compared with (none for peak counts)."""
        if self.predicate == "peak":
            return [numbers["tolerance"]]
        if self.statistic is None:
            return []
        return [v for v in (numbers.get("bound"), numbers.get("upper")) if v is not None]

    def _strip_title(self) -> str:
        """The strip panel's axis label: what each dot shows."""
        if self.predicate in ("unimodal", "multimodal"):
            return "peaks per channel"
        if self.predicate == "peak":
            return "peak distance" + (" (std)" if self.relative else "")
        return str(self.statistic)


#: statistics read from the raw samples when they were kept (exact), else from the histogram
SAMPLE_STATS = frozenset({"quantile", "median", "fraction"})


def _statistic(tree: Any) -> Statistic:
    """The statistic of a ``dist_stat`` parse tree."""
    if tree.data == "dist_moment":
        name = str(tree.children[0]).split()[-1]
        name = "skew" if name == "skewness" else name
        return Statistic(name, options=parse_options(tree.children[1], name))
    if tree.data == "dist_quantile":
        return Statistic("quantile", tree.children[0],
                         options=parse_options(tree.children[1], "quantile"))
    var, op, threshold, std = tree.children
    return Statistic("fraction", threshold, str(var), ast.comparison_op(op), std is not None)


def _histogram_data(channel: Any, settings: Any) -> dict[str, Any]:
    """A channel's histogram and the peaks found in it, for the plot."""
    modes = channel.modes(settings)
    return {"counts": modes.counts.tolist(), "edges": modes.edges.tolist(),
            "peaks": modes.locations.tolist()}


__all__ = ["DistributionClaim"]
