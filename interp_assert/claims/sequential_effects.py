"""``changes`` and ``recovers`` judged sequentially (``ablate L0H3: loss changes by ≥ 0.3 with
95% confidence, sequentially``; ``patch L1H2 from clean into corrupted: logit-diff recovers ≥
80% with 95% confidence, sequentially``). Neither effect is a mean of per-sample values, so
each is decided through means that are (``docs/definitions.md``, "Sequential changes and
recoveries", has the formulas):

* **changes**: ``|m|`` with ``m = mean_i (after_i − before_i)``. The confidence sequence
  ``[lo, hi]`` of ``m`` (level ``C``) gives the set of ``|m|`` it allows: ``[lo, hi]`` when
  ``lo ≥ 0``, ``[−hi, −lo]`` when ``hi ≤ 0``, else ``[0, max(−lo, hi)]``; the claim is decided
  on that interval as any sequential comparison is. No extra error: the interval covers
  ``|m|`` whenever the sequence covers ``m``.
* **recovers**: ``R = N / D`` with ``N = mean_i (after_i − before_i)`` and ``D = mean_i
  (source_i − before_i)`` (before: the target run, after: patched, source: the source run,
  paired by sample). When the sign ``s`` of ``D`` is known, ``R ≥ r ⇔ s · mean_i d_i(r) ≥ 0``
  with ``d_i(r) = (after_i − before_i) − r (source_i − before_i)``. The sign is established by
  the confidence sequence of ``source_i − before_i`` at level ``1 − α/2`` (it must exclude 0),
  and each bound ``r`` (one, or two for ``in [r1, r2]``) by the sequence of ``d_i(r)`` at level
  ``1 − α/(2k)`` (``k`` bounds), so that a wrong verdict needs one of them to miss: at most
  ``α/2 + k · α/(2k) = α``. Until the sign is known the claim is undecided.

Rates in ``[a, b]`` give bounded values (``|after − before| ≤ b − a``, ``|d_i(r)| ≤ (1 + |r|)
(b − a)``: the betting sequence); other metrics the asymptotic sequence tuned for the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.evaluate.sequential import (
    Decision,
    Watch,
    decide,
    make_cs,
    samples_to_decide,
)
from interp_assert.language import ast


@dataclass
class _Abs:
    """The interval of ``|m|`` a sequence of ``m`` allows (the interface :func:`decide` reads)."""

    low: float
    high: float
    mean: float
    n: int

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


def abs_interval(low: float, high: float) -> tuple[float, float]:
    """The values of ``|m|`` for ``m`` in ``[low, high]``."""
    if low >= 0:
        return low, high
    if high <= 0:
        return -high, -low
    return 0.0, max(-low, high)


def _cs(values: np.ndarray, alpha: float, span: tuple[float, float] | None, budget: int) -> Any:
    return make_cs(alpha, span, budget).update(values)


def _p(values: np.ndarray, alpha: float, span: tuple[float, float] | None, budget: int,
       op: str, bound: float) -> float:
    """The anytime p-value of ``mean(values) OP bound`` (betting or asymptotic)."""
    from interp_assert.evaluate.asymptotic_cs import asymptotic_p_value
    from interp_assert.evaluate.sequential import anytime_p_value

    if span is None:
        return asymptotic_p_value(values, alpha, budget, op, bound)
    return anytime_p_value(values, alpha, span[0], span[1], op, bound)


def judge_change(values: np.ndarray, span: tuple[float, float] | None, alpha: float,
                 budget: int, op: str, bound: float, upper: float | None,
                 with_p: bool = True) -> tuple[Decision, float, str]:
    """``|mean(values)| OP bound``: the decision, the p-value (NaN without ``with_p``) and
    what was measured."""
    cs = _cs(values, alpha, span, budget)
    low, high = abs_interval(*cs.bounds())
    decision = decide(_Abs(low, high, abs(cs.mean), cs.n), op, bound, upper)
    if not with_p:
        p = math.nan
    elif op == "in" and upper is not None:
        p = max(_p_abs(values, alpha, span, budget, ">=", bound),
                _p_abs(values, alpha, span, budget, "<=", upper))
    else:
        p = _p_abs(values, alpha, span, budget, op, bound)
    return decision, p, "|mean of per-sample changes (after − before)|"


def _p_abs(values: np.ndarray, alpha: float, span: tuple[float, float] | None, budget: int,
           op: str, bound: float) -> float:
    """p-value of ``|m| OP bound``: ``|m| ≥ b`` is ``m ≥ b`` or ``m ≤ −b`` (Bonferroni over the
    two); ``|m| ≤ b`` is ``m ≥ −b`` and ``m ≤ b`` (the larger p)."""
    if op in (">", ">="):
        if bound <= 0 and op == ">=":
            return 0.0
        return min(1.0, 2 * min(_p(values, alpha, span, budget, op, bound),
                                _p(values, alpha, span, budget, "<" if op == ">" else "<=",
                                   -bound)))
    if bound < 0:
        return 1.0
    return max(_p(values, alpha, span, budget, ">" if op == "<" else ">=", -bound),
               _p(values, alpha, span, budget, op, bound))


def _sides(op: str, bound: float, upper: float | None) -> list[tuple[float, bool, bool]]:
    """(r, whether R must be at least r, strict) for each bound of a recovery claim."""
    if op == "in" and upper is not None:
        return [(bound, True, False), (upper, False, False)]
    return [(bound, op in (">", ">="), op in (">", "<"))]


def _side(low: float, high: float, sign: float, at_least: bool, strict: bool) -> bool | None:
    """Whether ``R ≥ r`` (``at_least``) or ``R ≤ r`` holds, fails or is undecided, from the
    sequence ``[low, high]`` of ``mean d(r)`` and the sign of the denominator."""
    q_low, q_high = (low, high) if sign > 0 else (-high, -low)  # R − r has the sign of q
    if not at_least:
        q_low, q_high = -q_high, -q_low
    if q_low > 0 or (q_low >= 0 and not strict):
        return True
    if q_high < 0 or (q_high <= 0 and strict):
        return False
    return None


def judge_recovery(before: np.ndarray, after: np.ndarray, source: np.ndarray,
                   span: tuple[float, float] | None, alpha: float, budget: int, op: str,
                   bound: float, upper: float | None, with_p: bool = True,
                   denominator: np.ndarray | None = None) -> dict[str, Any]:
    """``R OP bound`` decided as the module says: the verdict (True, False, None), the
    sequences of the denominator and of each ``d(r)``, an estimate of the samples that
    would decide it and the p-value (NaN without ``with_p``). ``denominator``: per-sample
    terms of another denominator than ``source − before`` (a circuit's ``high − low``)."""
    numerator = after - before
    if denominator is None:
        denominator = source - before
    width = None if span is None else span[1] - span[0]
    sides = _sides(op, bound, upper)
    e_cs = _cs(denominator, alpha / 2, None if width is None else (-width, width), budget)
    e_low, e_high = e_cs.bounds()
    sign = 1.0 if e_low > 0 else -1.0 if e_high < 0 else 0.0
    verdicts: list[bool | None] = []
    combos = []
    estimate: int | None = None
    for r, at_least, strict in sides:
        d = numerator - r * denominator
        reach = None if width is None else (1 + abs(r)) * width
        d_cs = _cs(d, alpha / (2 * len(sides)), None if reach is None else (-reach, reach),
                   budget)
        low, high = d_cs.bounds()
        combos.append((r, low, high))
        verdicts.append(_side(low, high, sign, at_least, strict) if sign else None)
        if verdicts[-1] is None:
            found = samples_to_decide(Decision(None, low, high, d_cs.mean, d_cs.n), ">=", 0.0)
            estimate = max(estimate or 0, found or 0) or estimate
    if not sign:
        found = samples_to_decide(Decision(None, e_low, e_high, e_cs.mean, e_cs.n), ">=", 0.0)
        estimate = max(estimate or 0, found or 0) or estimate
    holds = (False if any(v is False for v in verdicts)
             else True if all(v is True for v in verdicts) else None)
    return {"holds": holds, "denominator": (e_low, e_high), "combinations": combos,
            "estimate": estimate, "used": int(before.size),
            "p_value": (recovery_p_value(numerator, denominator, span, alpha, budget, sides)
                        if with_p else math.nan)}


def recovery_p_value(numerator: np.ndarray, denominator: np.ndarray,
                     span: tuple[float, float] | None, alpha: float, budget: int,
                     sides: list[tuple[float, bool, bool]]) -> float:
    """p-value of a recovery claim: for each sign ``s`` of ``D``, ``p(s · D > 0) + p(s · mean
    d(r) passes)`` (a union bound, valid whatever ``D`` is), the smaller of the two signs
    doubled; for two bounds the larger of the sides'."""
    width = None if span is None else span[1] - span[0]
    e_span = None if width is None else (-width, width)
    worst = 0.0
    for r, at_least, strict in sides:
        d = numerator - r * denominator
        reach = None if width is None else ((1 + abs(r)) * -width, (1 + abs(r)) * width)
        branch = []
        for sign in (1.0, -1.0):
            p_sign = _p(sign * denominator, alpha, e_span, budget, ">", 0.0)
            passing = (">" if strict else ">=") if at_least else ("<" if strict else "<=")
            p_d = _p(sign * d, alpha, reach, budget, passing, 0.0)
            branch.append(min(1.0, p_sign + p_d))
        worst = max(worst, min(1.0, 2 * min(branch)))
    return worst


def sequential_effect(outcome: Outcome, comparison: ast.Comparison, meta: Mapping[str, Any],
                      bound: float, upper: float | None, also: bool,
                      row: dict[str, Any] | None) -> bool:
    """Judge a ``changes`` or ``recovers`` effect by confidence sequences; False for other
    meta (the caller then goes on)."""
    from interp_assert.claims.sequential import ASYMPTOTIC_NOTE
    from interp_assert.claims.sequential_kinds import difference_range

    change = meta.get("change")
    if "paired" not in meta or change not in ("change", "recover", "share"):
        return False
    assert comparison.confidence is not None
    level = comparison.confidence
    before, after, *rest = (np.asarray(a, dtype=np.float64).reshape(-1) for a in meta["paired"])
    budget = int(meta.get("budget", before.size))
    span = tuple(float(v) for v in meta["range"]) if meta.get("range") is not None else None
    if change == "change":
        decision, p_value, what = judge_change(after - before, difference_range(span),
                                               1 - level, budget, comparison.op, bound, upper)
        holds, used = decision.holds, decision.used
        interval: tuple[float, float] | None = (decision.lower, decision.upper)
        text = (f" ({level:.0%} confidence sequence [{fmt(decision.lower)}, "
                f"{fmt(decision.upper)}] on the {what}, {fmt(decision.mean)}")
        estimate = (samples_to_decide(decision, comparison.op, bound, upper)
                    if holds is None else None)
        extra: dict[str, Any] = {"lower": interval[0], "upper": interval[1]}
    else:
        share = change == "share"  # a circuit's score: (after − before) / (high − low)
        found = judge_recovery(before, after, before if share else rest[0], span, 1 - level,
                               budget, comparison.op, bound, upper,
                               denominator=rest[0] - rest[1] if share else None)
        holds, used, p_value, estimate = (found["holds"], found["used"], found["p_value"],
                                          found["estimate"])
        interval = None
        e_low, e_high = found["denominator"]
        gap = "high − low" if share else "source − before"
        combos = "; ".join(f"mean[(after − before) − {fmt(r)}·({gap})] in "
                           f"[{fmt(low)}, {fmt(high)}]" for r, low, high in found["combinations"])
        text = (f" (confidence sequences: denominator mean({gap}) in [{fmt(e_low)}, "
                f"{fmt(e_high)}]; {combos}")
        extra = {"lower": None, "upper": None, "denominator": [e_low, e_high],
                 "combinations": [list(c) for c in found["combinations"]]}
        if not (e_low > 0 or e_high < 0):
            outcome.notes.append(f"the sign of the ratio's denominator ({gap}) is not "
                                 "established yet: undecided")
    value_ok = outcome.value is None or math.isfinite(outcome.value)
    outcome.passed = bool(holds is True and value_ok and also)
    if row is not None:
        row["holds"] = holds is True
    outcome.meta["confidence"] = level
    outcome.interval = interval
    outcome.measured += f"{text}, after {used} of {budget} samples)"
    outcome.expected += f" for the whole {level:.0%} confidence sequence"
    if holds is None:
        about = (f"about {estimate:,} would decide it" if estimate
                 else "no estimate of the samples that would decide it")
        outcome.notes.append(f"undecided after {used} samples; {about}")
    else:
        stopped = f" (stopped early: {used} of {budget} samples)" if used < budget else ""
        outcome.notes.append(f"decided after {used} samples{stopped}")
    if span is None:
        outcome.notes.append(ASYMPTOTIC_NOTE)
    outcome.p_value = p_value
    outcome.sequential = {"used": used, "budget": budget, "decided": holds is not None,
                          "estimate": estimate or None, **extra}
    return True




# ---- stopping the intervened pass -------------------------------------------------------
@dataclass(eq=False)  # compared by identity: each claim's watch is its own
class EffectPlannedWatch:
    """A sequential ``changes`` / ``recovers`` claim's watch on its intervened pass: the
    clean (target) run's per-sample values, and for ``recovers`` the source run's."""

    op: str
    bound: float
    upper: float | None
    level: float
    change: str
    before: np.ndarray
    source: np.ndarray | None
    span: tuple[float, float] | None

    def make_watch(self) -> EffectWatch:
        """The watch a pass's stop rule updates."""
        return EffectWatch(self.op, self.bound, self.upper, self.level, planned=self)


@dataclass
class EffectWatch(Watch):
    """Decides the claim on the samples the intervened pass has read so far (from scratch
    each time: the checks come after batches that double in size)."""

    planned: EffectPlannedWatch | None = None

    def decided(self, values: np.ndarray, span: tuple[float, float] | None,
                budget: int = 0) -> bool:
        from interp_assert.claims.sequential_kinds import difference_range

        planned = self.planned
        assert planned is not None
        after = np.asarray(values, dtype=np.float64).reshape(-1)
        k = min(after.size, planned.before.size)
        before, after = planned.before[:k], after[:k]
        alpha = 1 - planned.level
        if planned.change == "changes":
            decision, _, _ = judge_change(after - before, difference_range(planned.span), alpha,
                                          budget, planned.op, planned.bound, planned.upper,
                                          with_p=False)
            return decision.holds is not None
        assert planned.source is not None
        found = judge_recovery(before, after, planned.source[:k], planned.span, alpha, budget,
                               planned.op, planned.bound, planned.upper, with_p=False)
        return found["holds"] is not None


def effect_watch(change: str, comparison: ast.Comparison, bound: float, upper: float | None,
                 clean: Any, source: Any) -> EffectPlannedWatch | None:
    """The planned watch of a ``changes`` / ``recovers`` claim (``clean``, ``source``: the
    target and source runs' values, with per-sample ``samples``), or None."""
    assert comparison.confidence is not None
    before = np.asarray(clean.meta["samples"], dtype=np.float64).reshape(-1)
    span = clean.meta.get("range")
    span = tuple(float(v) for v in span) if span is not None else None
    paired = None
    if change == "recovers":
        if source is None or "samples" not in source.meta:
            return None
        s = np.asarray(source.meta["samples"], dtype=np.float64).reshape(-1)
        paired = s if s.size == before.size else np.full(before.size, float(s.mean())
                                                         if s.size else math.nan)
        if not np.all(np.isfinite(paired)):
            return None
    return EffectPlannedWatch(comparison.op, bound, upper, comparison.confidence, change,
                              before, paired, span)


__all__ = ["EffectPlannedWatch", "EffectWatch", "abs_interval", "effect_watch", "judge_change",
           "judge_recovery", "recovery_p_value", "sequential_effect"]
