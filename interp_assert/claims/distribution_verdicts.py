"""Verdicts of distribution claims: each channel's statistic judged against the claim, and the
share of channels that ``every`` / ``mostly`` / ``at least N%`` / ``at most N%`` requires.

NaN or inf in a channel, or an empty channel, never holds. A statistic read from a histogram
(quantiles and fractions when the samples were not kept) comes with an interval holding the
true value; when the verdict differs across it, the claim is an error ("cannot decide within
histogram resolution"), never a verdict decided by the approximation.

Statistic options follow the statistic in parentheses: ``std (ddof 1)``, ``var (ddof 1)``,
``kurtosis (unbiased)``, ``skew (unbiased)``, ``quantile 0.9 (lower)`` or ``median (method
nearest)``, and the peak detector's ``(bins 32, prominence 0.1, sigmas 3, height 0.01,
distance 2)`` after ``unimodal``/``multimodal``/``peaks near ...``/``peak``/``peaks``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.claims.outcome import Outcome, compare, decide, fmt
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.evaluate.channel_stats import QUANTILE_METHODS, Channel, PeakSettings
from interp_assert.language import ast

PEAK_OPTIONS = ("bins", "prominence", "sigmas", "height", "distance")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "std": ("ddof",), "var": ("ddof",), "skew": ("unbiased",), "kurtosis": ("unbiased",),
    "quantile": ("method",), "median": ("method",), "peak": PEAK_OPTIONS,
    "peaks": PEAK_OPTIONS, "modal": PEAK_OPTIONS,
}


def parse_options(text: str | None, what: str) -> tuple[tuple[str, Any], ...]:
    """The options in ``(key value, key: value, key=value, word)`` for statistic ``what``;
    a bare word is ``unbiased``/``biased`` or a quantile method."""
    if not text:
        return ()
    allowed = _OPTIONS.get(what, ())
    out: dict[str, Any] = {}
    for item in text.strip()[1:-1].split(","):
        words = item.replace(":", " ").replace("=", " ").split()
        if not words:
            continue
        if len(words) == 1 and words[0] in ("unbiased", "biased"):
            key, value = "unbiased", words[0] == "unbiased"
        elif len(words) == 1 and words[0] in QUANTILE_METHODS:
            key, value = "method", words[0]
        elif len(words) == 2:
            key, value = words[0], words[1]
        else:
            key, value = item.strip(), None
        if key not in allowed:
            options = ", ".join(allowed) or "none"
            raise InterpAssertError(f"'{item.strip()}' is not an option of {what} (its "
                                    f"options: {options})",
                                    hint="e.g. 'std (ddof 1)', 'kurtosis (unbiased)', "
                                         "'quantile 0.9 (lower)', 'is unimodal (bins 32)'")
        out[key] = _option_value(key, value)
    return tuple(sorted(out.items()))


def _option_value(key: str, value: Any) -> Any:
    if key == "unbiased":
        return bool(value)
    if key == "method":
        if value not in QUANTILE_METHODS:
            raise InterpAssertError(f"unknown quantile method '{value}'",
                                    hint="one of " + ", ".join(QUANTILE_METHODS))
        return value
    try:
        number = float(value)
    except ValueError:
        raise InterpAssertError(f"option '{key}' takes a number, not '{value}'") from None
    if not math.isfinite(number):
        raise InterpAssertError(f"option '{key}' must be a finite number, not {value}")
    if key in ("ddof", "bins", "distance"):
        if number != int(number) or number < 0:
            raise InterpAssertError(f"option '{key}' must be a whole number >= 0, not {value}")
        return int(number)
    return number


def options_text(options: tuple[tuple[str, Any], ...]) -> str:
    """Options back as claim text, e.g. `` (ddof 1)`` (empty without options)."""
    if not options:
        return ""
    words = []
    for key, value in options:
        if key == "unbiased":
            words.append("unbiased" if value else "biased")
        else:
            words.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return f" ({', '.join(words)})"


def peak_settings(options: tuple[tuple[str, Any], ...]) -> PeakSettings:
    return PeakSettings.of({k: v for k, v in options if k in PEAK_OPTIONS})

MOSTLY = 0.9
"""The share of channels that ``mostly`` requires."""


@dataclass(frozen=True)
class Statistic:
    """What ``has ...`` measures: a moment, a quantile, a peak, or a fraction of values."""

    name: str
    argument: ast.Node | None = None
    var: str = "|x|"
    op: str = "<"
    relative: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any) -> Any:
        return dict(self.options).get(key, default)

    def __str__(self) -> str:
        if self.name == "fraction":
            unit = " std" if self.relative else ""
            return f"fraction {self.var} {self.op} {self.argument}{unit}"
        if self.name == "quantile":
            return f"quantile {self.argument}{options_text(self.options)}"
        return self.name + options_text(self.options)


def margin(value: float, comparison: ast.Comparison, bound: float,
           upper: float | None = None) -> float:
    """How far ``value`` is inside (positive) or outside (negative) the comparison."""
    if not math.isfinite(value):
        return -math.inf
    with np.errstate(invalid="ignore"):
        out = _margin(value, comparison, bound, upper)
    return -math.inf if math.isnan(out) else out


def _margin(value: float, comparison: ast.Comparison, bound: float,
            upper: float | None = None) -> float:
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
    undecided: str = ""
    """Why the verdict cannot be decided (a histogram interval straddling the bound)."""


# -- one channel -----------------------------------------------------------------------------
def judge_modal(label: str, ch: Channel, predicate: str,
                settings: PeakSettings | None = None) -> Judged:
    """``is unimodal`` / ``is multimodal``: the number of significant peaks."""
    modes = ch.modes(settings or PeakSettings())
    count = len(modes.locations)
    at = ", ".join(fmt(x) for x in modes.locations[:5])
    detail = f"{count} peak{'s' if count != 1 else ''}" + (f" at {at}" if count else "")
    if predicate == "unimodal":
        holds, edge = count == 1, -abs(count - 1)
    else:
        holds, edge = count >= 2, count - 2
    return finish(label, float(count), holds, float(edge) if count else -math.inf, detail,
                  ch, {"peaks": at})


def judge_peak(label: str, ch: Channel, target: float, tolerance: float,
               relative: bool, settings: PeakSettings | None = None) -> Judged:
    """``peaks near TARGET within TOLERANCE [std]``: the highest peak's distance (an
    infinite tolerance admits every finite distance)."""
    modes = ch.modes(settings or PeakSettings())
    if not len(modes.locations):
        return finish(label, math.nan, False, -math.inf, "no values", ch)
    location = float(modes.locations[0])
    distance = abs(location - target)
    allowed = tolerance * ch.std if relative and not math.isinf(tolerance) else tolerance
    value = distance / ch.std if relative and ch.std > 0 else distance
    if relative and ch.std == 0:
        value = 0.0 if distance == 0 else math.inf
    holds = bool(distance <= allowed)
    unit = " std" if relative else ""
    detail = f"highest peak at {fmt(location)}, {fmt(value)}{unit} from {fmt(target)}"
    scale = ch.std if relative and ch.std > 0 else 1.0
    return finish(label, value, holds, (allowed - distance) / scale, detail, ch,
                  {"peak at": location})


def judge_stat(label: str, ch: Channel, stat: Statistic, comparison: ast.Comparison,
               argument: float | None, bound: float, upper: float | None) -> Judged:
    """``has STATISTIC COMPARISON``: the channel's statistic against the evaluated bounds.

    Quantiles and fractions read from a histogram decide only when the whole interval holding
    the true value gets one verdict; otherwise the channel is ``undecided``."""
    extra: dict[str, Any] = {}
    interval: tuple[float, float] | None = None
    if stat.name == "fraction":
        assert argument is not None
        threshold = argument * ch.std if stat.relative else argument
        value, exact = ch.fraction(stat.var, stat.op, threshold)
        extra["approximate"] = not exact
        if not exact:
            interval = ch.fraction_bounds(stat.var, stat.op, threshold)
    elif stat.name in ("quantile", "median"):
        q = 0.5 if stat.name == "median" else argument
        assert q is not None
        method = stat.option("method", "linear")
        value = ch.quantile(q, method)
        if not ch.exact:
            interval = ch.quantile_bounds(q, method)
    elif stat.name in ("peak", "peaks"):
        modes = ch.modes(peak_settings(stat.options))
        count = len(modes.locations)
        if stat.name == "peaks":
            value = float(count)
        else:
            value = float(modes.locations[0]) if count else math.nan
    elif stat.name in ("std", "var", "skew", "kurtosis"):
        value = ch.moment(stat.name, stat.option("ddof", 0), stat.option("unbiased", False))
    else:
        value = {"mean": ch.mean, "min": ch.minimum, "max": ch.maximum}[stat.name]
    if ch.n == 0:
        value = math.nan
    holds = compare(value, comparison, bound, upper)
    detail = f"{stat} = {fmt(value)}"
    undecided = ""
    if interval is not None and math.isfinite(value):
        verdict = decide(interval, comparison, bound, upper)
        low, high = interval
        detail += f" (histogram: in [{fmt(low)}, {fmt(high)}])"
        if verdict is None:
            undecided = (f"{stat} of {label} lies in [{fmt(low)}, {fmt(high)}] by the "
                         f"histogram (bin width {fmt(float(ch.edges[1] - ch.edges[0]))}), and "
                         f"the claim holds for part of that interval only")
        else:
            holds = verdict
    judged = finish(label, value, holds, margin(value, comparison, bound, upper), detail, ch,
                    extra)
    judged.undecided = undecided if judged.channel.n and not ch.nonfinite else ""
    return judged


def check_argument(stat: Statistic, argument: float | None) -> None:
    """Refuse a quantile outside [0, 1] or a NaN fraction threshold (before any channel)."""
    if argument is None:
        return
    if stat.name == "quantile" and not 0 <= argument <= 1:
        raise QuantityError(f"quantile {fmt(argument)} is not between 0 and 1",
                            hint="write e.g. 'quantile 0.99' or 'quantile 99%'")
    if math.isnan(argument):
        raise QuantityError(f"the threshold of '{stat}' is NaN",
                            hint="a NaN threshold cannot decide a claim; check its expression")


def undecidable(judged: list[Judged]) -> QuantityError:
    """The error for a verdict that the histogram's resolution cannot decide."""
    first = next(j for j in judged if j.undecided)
    count = sum(1 for j in judged if j.undecided)
    more = f" ({count} channels are undecided)" if count > 1 else ""
    reason = first.channel.dropped or "the samples were not kept"
    return QuantityError(
        f"cannot decide within histogram resolution: {first.undecided}{more}; {reason}",
        hint="raise the memory limit (--interp-memory-limit, INTERP_ASSERT_MEMORY_LIMIT) so "
             "the samples are kept and the statistic is computed exactly, use a smaller "
             "dataset, or raise the quantity's 'bins:'")


def finish(label: str, value: float, holds: bool, edge: float, detail: str, ch: Channel,
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


# -- all channels ----------------------------------------------------------------------------
def required(quantifier: str | None, share: ast.Number | None, total: int
             ) -> tuple[str, Callable[[int, int], bool]]:
    """(text, test) of the share of channels that must hold; the test takes the number of
    channels that hold and the number that are not finite."""
    if quantifier in ("every", "each", "all", None):
        return "all", lambda held, _bad: held == total
    if quantifier in ("mostly", "most"):
        return (f"at least {MOSTLY:.0%}",
                lambda held, _bad: held >= MOSTLY * total - 1e-9)
    assert share is not None
    is_count = share.unit is None and share.value >= 1 and share.value == int(share.value)
    need = share.value if is_count else share.value * total
    text = (f"{quantifier} {int(share.value)}" if is_count
            else f"{quantifier} {fmt(share.value * 100)}%")
    if quantifier == "at least":
        return text, lambda held, _bad: held >= need - 1e-9
    return text, lambda held, bad: held + bad <= need + 1e-9


def single(j: Judged, expected: str) -> Outcome:
    """The outcome of a claim about one channel."""
    if j.undecided:
        raise undecidable([j])
    return Outcome(j.holds, j.detail, expected, value=j.value, rows=[row(j, "channel")])


def quantified(judged: list[Judged], axis_name: str, quantifier: str | None,
               share: ast.Number | None, noun: str | None, expected: str) -> Outcome:
    """The outcome of a claim about many channels: the share that holds against the share
    the quantifier requires (``expected`` is the per-channel expectation)."""
    total = len(judged)
    held = sum(j.holds for j in judged)
    bad = sum(1 for j in judged if not math.isfinite(j.value) or j.channel.nonfinite)
    text, test = required(quantifier, share, total)
    passed = bool(test(held, bad))
    undecided = [j for j in judged if j.undecided]
    if undecided:
        held_undecided = sum(1 for j in undecided if j.holds)
        low, high = held - held_undecided, held - held_undecided + len(undecided)
        if bool(test(low, bad)) != bool(test(high, bad)):
            raise undecidable(undecided)
    nouns = plural_noun(noun or axis_name)
    expected = f"{text} of the {total} {nouns}: {expected}"
    at_most = quantifier == "at most"
    furthest = worst(judged, at_most)
    fraction = (held + bad) / total if at_most else held / total
    if at_most:
        which = "e.g." if held else "closest"
    else:
        which = "worst" if held < total else "closest to failing"
    measured = (f"{held}/{total} {nouns} ({fraction:.1%}) hold"
                + (f" ({bad} not finite)" if at_most and bad else "")
                + f"; {which} {furthest.label}: {furthest.detail}")
    order = sorted(judged, key=lambda j: (fine(j, at_most), -j.margin if at_most
                                          else j.margin))
    rows = [row(j, axis_name, fine(j, at_most)) for j in order]
    return Outcome(passed, measured, expected, value=fraction, rows=rows)


def worst(judged: list[Judged], at_most: bool) -> Judged:
    """The channel furthest on the failing side (for 'at most': the one that holds most)."""
    if at_most:
        return max(judged, key=lambda j: j.margin)
    return min(judged, key=lambda j: j.margin)


def fine(j: Judged, at_most: bool) -> bool:
    """Whether channel ``j`` does not count against the claim ('at most': it lacks the
    property and is finite; otherwise: it has the property)."""
    if at_most:
        return not (j.holds or not math.isfinite(j.value) or j.channel.nonfinite)
    return j.holds


def row(j: Judged, axis_name: str, ok: bool | None = None) -> dict[str, Any]:
    """A report row; ``holds`` is ``ok`` when given (False for channels that count against
    the claim), else the channel's own verdict."""
    out: dict[str, Any] = {axis_name or "channel": j.label, "statistic": j.detail,
                           "value": j.value}
    if j.channel.nonfinite:
        out["non-finite"] = j.channel.nonfinite
    out["holds"] = j.holds if ok is None else ok
    return out


def plural_noun(noun: str) -> str:
    """'neuron' -> 'neurons' for plain words; other names stay as they are."""
    return f"{noun}s" if noun.isalpha() and noun.islower() and not noun.endswith("s") else noun
