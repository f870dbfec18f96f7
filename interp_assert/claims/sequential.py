"""Sequential comparisons: ``exact-match ≥ 99% with 95% confidence, sequentially``.

The claim is judged by the anytime-valid betting confidence sequence of its quantity's
per-sample values (:mod:`interp_assert.evaluate.sequential`), read in dataset order: it holds
when the whole sequence clears the bound, fails when the sequence excludes the bound, and is
*undecided* when the samples it read (its budget, unless the pass stopped early) leave the
bound inside. The result says how many samples were used of the budget.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.asymptotic_cs import asymptotic_p_value
from interp_assert.evaluate.sequential import (
    SEQUENTIAL_OPS,
    anytime_p_value,
    decide,
    make_cs,
    samples_to_decide,
)
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: points of the running sequence kept for the plot
TRACE_POINTS = 60
#: the note of a claim judged by the asymptotic sequence (unbounded values)
ASYMPTOTIC_NOTE = ("unbounded per-sample values: judged by the asymptotic confidence sequence "
                   "(Waudby-Smith et al. 2021), valid only asymptotically (many samples)")


def sequential_outcome(subject: ast.Node, comparison: ast.Comparison, quantity: Any,
                       bound: float, upper: float | None) -> Outcome:
    """The outcome of a sequential comparison of ``quantity`` (a scalar ``Labelled``)."""
    assert comparison.confidence is not None
    if comparison.op not in SEQUENTIAL_OPS:
        raise QuantityError(f"'{comparison.op}' cannot be decided sequentially",
                            hint="use >, >=, <, <= or 'in [a, b]' with ', sequentially'")
    meta = quantity.meta
    if quantity.values.size != 1 or "samples" not in meta:
        raise QuantityError(
            f"'{subject}' cannot be evaluated sequentially: it has no per-sample values",
            hint="sequential evaluation covers quantities with per-sample values: rates "
                 "(metric: exact_match, token_accuracy) and metrics such as loss or "
                 "logit_diff; drop ', sequentially' (or --interp-sequential)")
    samples = np.asarray(meta["samples"], dtype=np.float64).reshape(-1)
    span = tuple(float(v) for v in meta["range"]) if "range" in meta else None
    level = comparison.confidence
    budget = int(meta.get("context", {}).get("samples", samples.size) or samples.size)
    cs = make_cs(1 - level, span, budget)
    trace = _trace(cs, samples)
    decision = decide(cs, comparison.op, bound, upper)
    used = samples.size
    estimate = None
    interval = (decision.lower, decision.upper)
    measured = (f"{fmt(decision.mean)} ({level:.0%} confidence sequence [{fmt(interval[0])}, "
                f"{fmt(interval[1])}] after {used} of {budget} samples)")
    expected = (f"{expected_text(comparison, bound, upper)} for the whole {level:.0%} "
                "confidence sequence")
    notes = []
    if decision.holds is None:
        estimate = samples_to_decide(decision, comparison.op, bound, upper)
        about = (f"about {estimate:,} would decide it" if estimate is not None
                 else "the running mean sits on the bound, so no sample size would")
        notes.append(f"undecided after {used} samples; {about}")
    else:
        stopped = f" (stopped early: {used} of {budget} samples)" if used < budget else ""
        notes.append(f"decided after {used} samples{stopped}")
    rows = [{"quantity": str(subject), "measured": decision.mean,
             "expected": expected_text(comparison, bound, upper),
             "holds": decision.holds is True, "cs_low": interval[0], "cs_high": interval[1],
             "samples_used": used, "budget": budget}]
    outcome = Outcome(decision.holds is True, measured, expected, value=decision.mean,
                      rows=rows, notes=notes, interval=interval,
                      context=dict(meta.get("context", {})),
                      plot_data={"values": {str(subject): decision.mean}, "bound": bound,
                                 "upper": upper, "interval": interval, "sequence": trace,
                                 "budget": budget, "level": level})
    if span is None:
        outcome.p_value = asymptotic_p_value(samples, 1 - level, budget, comparison.op, bound,
                                             upper)
        outcome.notes.append(ASYMPTOTIC_NOTE)
    else:
        outcome.p_value = anytime_p_value(samples, 1 - level, *span, comparison.op, bound,
                                          upper)
    outcome.sequential = {"used": used, "budget": budget, "decided": decision.holds is not None,
                          "lower": interval[0], "upper": interval[1], "estimate": estimate}
    return outcome


def supports_sequential(claim: Any, outcome: Outcome) -> None:
    """A claim written ``, sequentially`` that its kind judged without a confidence sequence
    is an error (rather than a fixed-sample verdict that reads as a sequential one)."""
    comparison = getattr(claim, "comparison", None)
    if getattr(comparison, "sequential", False) and outcome.sequential is None:
        raise QuantityError(
            f"'{claim}': ', sequentially' is not supported by {claim.kind} claims",
            hint="sequential evaluation covers comparisons of one quantity with per-sample "
                 "values (e.g. 'exact-match ≥ 99% with 95% confidence, sequentially'), "
                 "attention scores, and ablation/patching effects that drop or rise; drop "
                 "', sequentially'")


def _trace(cs: Any, samples: np.ndarray) -> dict[str, list[float]]:
    """Feed ``samples`` to ``cs`` in about TRACE_POINTS steps: the running bounds."""
    step = max(1, -(-samples.size // TRACE_POINTS))
    ns, lows, highs = [], [], []
    for start in range(0, samples.size, step):
        cs.update(samples[start:start + step])
        low, high = cs.bounds()
        if math.isfinite(low) and math.isfinite(high):  # asymptotic: none before MIN_SAMPLES
            ns.append(cs.n)
            lows.append(low)
            highs.append(high)
    return {"n": ns, "low": lows, "high": highs}


def plot_sequence(outcome: Outcome, ax: Axes) -> None:
    """The running confidence sequence against the number of samples, with the bound(s)."""
    from interp_assert.claims.plots import FAIL, HOLD, legend

    data = outcome.plot_data
    trace = data["sequence"]
    colour = HOLD if outcome.passed else FAIL
    ax.fill_between(trace["n"], trace["low"], trace["high"], color=colour, alpha=0.3,
                    step="post", label=f"{data['level']:.0%} confidence sequence")
    ax.axhline(data["bound"], color="k", linestyle="--", label=f"bound {fmt(data['bound'])}")
    if data.get("upper") is not None:
        ax.axhline(data["upper"], color="k", linestyle=":", label=f"bound {fmt(data['upper'])}")
    ax.axvline(data["budget"], color="grey", linewidth=1, label=f"budget {data['budget']}")
    ax.set_xlabel("samples")
    ax.set_ylabel("mean")
    ax.set_xlim(0, max(data["budget"], trace["n"][-1] if trace["n"] else 1))
    legend(ax, ax.get_legend_handles_labels()[0])
    ax.grid(alpha=0.3)


__all__ = ["plot_sequence", "sequential_outcome", "supports_sequential"]
