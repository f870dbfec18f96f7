"""Verdicts of distribution claims: each channel's statistic judged against the claim, and the
share of channels that ``every`` / ``mostly`` / ``at least N%`` / ``at most N%`` requires.

NaN or inf in a channel, or an empty channel, never holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interp_assert.claims.outcome import Outcome, compare, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.channel_stats import Channel
from interp_assert.language import ast

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


# -- one channel -----------------------------------------------------------------------------
def judge_modal(label: str, ch: Channel, predicate: str) -> Judged:
    """``is unimodal`` / ``is multimodal``: the number of significant peaks."""
    modes = ch.modes()
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
               relative: bool) -> Judged:
    """``peaks near TARGET within TOLERANCE [std]``: the highest peak's distance."""
    modes = ch.modes()
    if not len(modes.locations):
        return finish(label, math.nan, False, -math.inf, "no values", ch)
    location = float(modes.locations[0])
    distance = abs(location - target)
    allowed = tolerance * ch.std if relative else tolerance
    value = distance / ch.std if relative and ch.std > 0 else distance
    if relative and ch.std == 0:
        value = 0.0 if distance == 0 else math.inf
    holds = bool(math.isfinite(allowed) and distance <= allowed)
    unit = " std" if relative else ""
    detail = f"highest peak at {fmt(location)}, {fmt(value)}{unit} from {fmt(target)}"
    scale = ch.std if relative and ch.std > 0 else 1.0
    return finish(label, value, holds, (allowed - distance) / scale, detail, ch,
                  {"peak at": location})


def judge_stat(label: str, ch: Channel, stat: Statistic, comparison: ast.Comparison,
               argument: float | None, bound: float, upper: float | None) -> Judged:
    """``has STATISTIC COMPARISON``: the channel's statistic against the evaluated bounds."""
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
    holds = compare(value, comparison, bound, upper)
    return finish(label, value, holds, margin(value, comparison, bound, upper),
                  f"{stat} = {fmt(value)}", ch, extra)


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
