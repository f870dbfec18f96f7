"""``with C% confidence`` on circuit hypothesis tests (:mod:`interp_assert.claims.circuit_test`).

Every score of a circuit claim is a ratio of differences of the metric's means over the same
samples, M̄(S) the mean over samples of the metric with everything outside S mean-ablated:

* faithfulness (M̄(C) − b̄) / (M̄_full − b̄);
* completeness (M̄_full − M̄(all but C)) / (M̄_full − b̄);
* a member v's effect (M̄(C) − M̄(C ∖ v)) / (M̄_full − b̄);

with b̄ = 0 under ``(ratio)``. Each is the paired ``share`` statistic of
:mod:`interp_assert.evaluate.intervals` on four per-sample arrays (before, after, high, low),
resampled together (the same sample in every run), so the interval is a paired bootstrap of the
ratio of paired means. Minimality holds with confidence when every member's interval clears
the bound; its p-value is the largest of the members' (an intersection-union test), and its
reported interval is that member's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp_assert.claims.confidence import method_text, unit_meta, with_confidence
from interp_assert.claims.outcome import Outcome, decide, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

PAIRING = ("paired on {n} samples: each sample's metric in every mean-ablated run the score "
           "reads (ratio of paired means)")


def share_meta(before: Any, after: Any, high: Any, low: Any) -> dict[str, Any]:
    """The ``paired`` meta of (mean(after) − mean(before)) / (mean(high) − mean(low)) from
    per-sample arrays; empty when a run recorded no per-sample values or the runs disagree on
    the samples."""
    if any(a is None for a in (before, after, high, low)):
        return {}
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (before, after, high, low)]
    n = arrays[0].size
    if n == 0 or any(a.size != n for a in arrays):
        return {}
    return {"paired": tuple(arrays), "change": "share", "unit": "sample",
            "pairing": PAIRING.format(n=n)}


def score_metas(prop: str, ratio: bool, samples: Mapping[frozenset[str], Any],
                universe: Sequence[str], members: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``share`` metas of a circuit claim's score from the per-sample metric of each run
    (``samples``, keyed by the components kept): one per member for ``minimal`` (keyed by the
    member), else one keyed by the empty string."""
    high = samples.get(frozenset(universe))
    low: Any = None
    if high is not None:
        low = np.zeros(np.asarray(high).size) if ratio else samples.get(frozenset())
    whole = frozenset(members)
    if prop == "minimal":
        return {label: share_meta(samples.get(whole - {label}), samples.get(whole), high, low)
                for label in members}
    if prop == "complete":
        rest = frozenset(universe) - whole
        return {"": share_meta(samples.get(rest), high, high, low)}
    return {"": share_meta(low, samples.get(whole), high, low)}


def _no_samples(what: str, comparison: ast.Comparison) -> QuantityError:
    return QuantityError(f"{what} records no per-sample values, so '{comparison}' has no "
                         "interval to judge",
                         hint="drop 'with ... confidence', or measure a metric that records "
                              "per-sample values (loss, logit_diff, exact_match, a custom "
                              "metric, or a sum or difference of them)")


def judge_score(outcome: Outcome, comparison: ast.Comparison, meta: Mapping[str, Any],
                bound: float, upper: float | None, what: str, also: bool) -> Outcome:
    """Faithfulness or completeness: the paired interval of the score decides (and the random
    circuits, ``also``)."""
    if comparison.confidence is not None and not meta:
        raise _no_samples(what, comparison)
    return with_confidence(outcome, comparison, meta, bound, upper, what, also=also)


def judge_members(outcome: Outcome, comparison: ast.Comparison,
                  metas: Mapping[str, Mapping[str, Any]], bound: float, upper: float | None,
                  what: str) -> Outcome:
    """Minimality: each member's paired interval must clear the bound; the weakest member
    (largest p-value) gives the outcome's interval, p-value and per-sample values."""
    if comparison.confidence is None:
        return outcome
    from interp_assert.evaluate.intervals import interval_of
    from interp_assert.evaluate.pvalues import p_value_for

    level = comparison.confidence
    if not metas or any(not meta for meta in metas.values()):
        raise _no_samples(what, comparison)
    intervals, verdicts, p_values = {}, {}, {}
    for label, meta in metas.items():
        intervals[label] = interval_of(dict(meta), level)
        verdicts[label] = decide(intervals[label], comparison, bound, upper)
        p_values[label] = p_value_for(dict(meta), comparison.op, bound, upper)
    def weakness(label: str) -> tuple[float, float]:
        """Larger for a weaker member: its p-value, then how near its interval's judged end
        comes to (or how far past) the bound."""
        low, high = intervals[label]
        end = high if comparison.op in ("<", "<=") else -low
        p = p_values[label]
        return (1.0 if p is None else p, math.inf if math.isnan(end) else end)

    weakest = max(metas, key=weakness)
    interval = intervals[weakest]
    outcome.meta.update(unit_meta(metas[weakest]))
    outcome.meta["confidence"] = level
    outcome.interval = interval
    outcome.p_value = p_values[weakest]
    value_ok = outcome.value is not None and math.isfinite(outcome.value)
    outcome.passed = bool(value_ok and all(v is True for v in verdicts.values()))
    outcome.plot_data["member_intervals"] = {k: list(v) for k, v in intervals.items()}
    outcome.plot_data["interval"] = interval
    outcome.measured += (f" ({level:.0%} CI of the weakest member, {weakest}: "
                         f"[{fmt(interval[0])}, {fmt(interval[1])}], "
                         f"{method_text(metas[weakest])})")
    outcome.expected += f" for each member's whole {level:.0%} interval"
    for row in outcome.rows:
        label = str(row.get("run", "")).removeprefix("circuit without ")
        if label in intervals and row.get("run", "").startswith("circuit without "):
            row["interval"] = f"[{fmt(intervals[label][0])}, {fmt(intervals[label][1])}]"
    undecided = [k for k, v in verdicts.items() if v is None]
    nan = [k for k, v in intervals.items() if any(math.isnan(end) for end in v)]
    if nan:
        outcome.notes.append(f"the interval of {', '.join(nan)} is NaN (a NaN per-sample "
                             "value, or a gap that vanishes in a resample): it never passes")
    if undecided:
        outcome.notes.append(f"the {level:.0%} interval of {', '.join(undecided)} straddles "
                             "the bound: not decided at this sample size, so the claim fails")
    outcome.notes.append(str(metas[weakest]["pairing"]))
    return outcome


__all__ = ["judge_members", "judge_score", "share_meta"]
