"""``with C% confidence, sequentially`` on claim kinds beyond comparisons of one quantity:
attention scores and the paired effects of ablation and patching.

* **Attention** (``L1H2 attends to the previous token ≥ 0.9 with 95% confidence,
  sequentially``): each sample's score ``s_i = sums_i / counts_i`` (the mean weight on the
  targets over the sample's counted (sample, query) pairs) lies in [0, 1], so the betting
  sequence bounds the *mean of the per-sample scores* ``E[s_i]``. The fixed-sample score is a
  ratio of sums (``Σ sums_i / Σ counts_i``); the two coincide when every sample counts as many
  pairs, and otherwise the sequence bounds the per-sample mean, which the claim reports.
* **Paired effects** (``ablate L1H0: loss drops ≥ 0.5 with 95% confidence, sequentially``):
  the per-sample differences ``d_i = before_i − after_i`` (``drops``) or ``after_i − before_i``
  (``rises``): for a rate in [a, b] they lie in [a − b, b − a] and the betting sequence bounds
  their mean, the effect; otherwise they are unbounded and the asymptotic sequence
  (:mod:`interp_assert.evaluate.asymptotic_cs`) does. ``changes`` (an absolute value) and
  ``recovers`` (a ratio) are not means of per-sample values: they are decided through means
  that are (:mod:`interp_assert.claims.sequential_effects`).

Both are judged on every sample their passes read, in dataset order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

#: slack for float rounding of attention weights (a row sums to 1 up to this)
ROUNDING = 1e-6


def per_unit_values(meta: Mapping[str, Any], explicit: bool = True
                    ) -> tuple[np.ndarray, tuple[float, float] | None, str] | None:
    """(values, range or None, what they are) of a kind's interval meta, or None when the kind
    has nothing a confidence sequence can read (an effect that changes or recovers is an
    error when ``explicit``, written ``, sequentially``; else it stays fixed-sample)."""
    if "paired" in meta:
        change = str(meta.get("change", "drop"))
        before, after = (np.asarray(a, dtype=np.float64).reshape(-1) for a in meta["paired"][:2])
        span = difference_range(meta.get("range"))
        if change == "drop":
            return before - after, span, "per-sample drops (before − after)"
        if change == "rise":
            return after - before, span, "per-sample rises (after − before)"
        if not explicit:
            return None
        raise QuantityError(
            f"an effect that {change}s cannot be judged sequentially: it is not a mean of "
            "per-sample values",
            hint="write 'drops' or 'rises' with ', sequentially', or drop ', sequentially'")
    if "clusters" in meta:
        sums, counts = (np.asarray(a, dtype=np.float64) for a in meta["clusters"])
        scores = sums / counts
        if scores.size and (scores.min() < -ROUNDING or scores.max() > 1 + ROUNDING):
            raise QuantityError("per-sample attention scores leave [0, 1]: the pattern's rows "
                                "are not attention weights", hint="drop ', sequentially'")
        return np.clip(scores, 0.0, 1.0), (0.0, 1.0), "per-sample scores"
    return None


def difference_range(span: Any) -> tuple[float, float] | None:
    """The range of a difference of two values in ``span`` ([a, b] -> [a − b, b − a]), or
    None for unbounded values."""
    if span is None:
        return None
    low, high = (float(v) for v in span)
    return (low - high, high - low)


def sequential_confidence(outcome: Outcome, comparison: ast.Comparison,
                          meta: Mapping[str, Any], bound: float, upper: float | None,
                          also: bool = True, row: dict[str, Any] | None = None) -> bool:
    """Judge ``outcome`` by the confidence sequence of ``meta``'s per-unit values; False when
    the kind records none (its fixed-sample interval then applies, and ``, sequentially``
    written out is an error)."""
    from interp_assert.claims.sequential import ASYMPTOTIC_NOTE, _trace
    from interp_assert.claims.sequential_effects import sequential_effect
    from interp_assert.evaluate.asymptotic_cs import asymptotic_p_value
    from interp_assert.evaluate.sequential import (
        SEQUENTIAL_OPS,
        anytime_p_value,
        decide,
        make_cs,
        samples_to_decide,
    )

    if sequential_effect(outcome, comparison, meta, bound, upper, also, row):
        return True  # changes / recovers: through means that are (sequential_effects.py)
    found = per_unit_values(meta, explicit=comparison.sequential)
    if found is None:
        return False
    values, span, what = found
    assert comparison.confidence is not None
    if comparison.op not in SEQUENTIAL_OPS:
        raise QuantityError(f"'{comparison.op}' cannot be decided sequentially",
                            hint="use >, >=, <, <= or 'in [a, b]' with ', sequentially'")
    level = comparison.confidence
    budget = int(meta.get("budget", values.size))  # more when a pass stopped early
    cs = make_cs(1 - level, span, budget)
    trace = _trace(cs, values)
    decision = decide(cs, comparison.op, bound, upper)
    interval = (decision.lower, decision.upper)
    value_ok = outcome.value is None or math.isfinite(outcome.value)
    outcome.passed = bool(decision.holds is True and value_ok and also)
    if row is not None:
        row["holds"] = decision.holds is True
    outcome.interval = interval
    outcome.meta["confidence"] = level
    outcome.measured += (f" ({level:.0%} confidence sequence [{fmt(interval[0])}, "
                         f"{fmt(interval[1])}] on the mean of {what}, {fmt(decision.mean)}, "
                         f"after {decision.used} of {budget} samples)")
    outcome.expected += f" for the whole {level:.0%} confidence sequence"
    estimate = None
    if decision.holds is None:
        estimate = samples_to_decide(decision, comparison.op, bound, upper)
        about = (f"about {estimate:,} would decide it" if estimate is not None
                 else "no estimate of the samples that would decide it")
        outcome.notes.append(f"undecided after {decision.used} samples; {about}")
    else:
        stopped = (f" (stopped early: {decision.used} of {budget} samples)"
                   if decision.used < budget else "")
        outcome.notes.append(f"decided after {decision.used} samples{stopped}")
    if span is None:
        outcome.notes.append(ASYMPTOTIC_NOTE)
        outcome.p_value = asymptotic_p_value(values, 1 - level, budget, comparison.op, bound,
                                             upper)
    else:
        outcome.p_value = anytime_p_value(values, 1 - level, *span, comparison.op, bound, upper)
    outcome.sequential = {"used": decision.used, "budget": budget,
                          "decided": decision.holds is not None, "lower": interval[0],
                          "upper": interval[1], "estimate": estimate}
    outcome.plot_data.setdefault("interval", interval)
    outcome.plot_data["sequence"] = trace
    return True


__all__ = ["per_unit_values", "sequential_confidence"]
