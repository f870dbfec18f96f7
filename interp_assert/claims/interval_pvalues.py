"""p-values of the confidence claims whose kinds build their own interval (probes, the logit
lens, feature frequencies): each inverts the claim's interval, as
:mod:`interp_assert.evaluate.pvalues` does for the others, so that ``p ≤ (1 − C)/2`` exactly
when the C% interval clears the bound, and the claim joins the run-level error control.

* a probe's held-out accuracy (Wilson on the held-out samples right): the score test;
* a probe's selectivity (bootstrap of the per-sample accuracy − control accuracy): the seeded
  bootstrap of the mean;
* a probe's held-out R² (percentile bootstrap over the held-out samples, finite draws): the
  position of the bound among the same sorted draws;
* a logit-lens mean (bootstrap of the mean over samples) and share of samples (Wilson on the
  samples meeting the condition, judged ``≥`` the share);
* a feature's frequency (Wilson on the tokens or samples it fires on).

Without ``with C% confidence`` a claim has no p-value (None), as every other kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_assert.evaluate.pvalues import p_value_for, percentile_p
from interp_assert.evaluate.stats import bootstrap_mean, wilson
from interp_assert.language import ast

NAN = (float("nan"), float("nan"))
_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
        "==": np.equal, "!=": np.not_equal}


def rate_p(successes: float, trials: float, op: str, bound: float,
           upper: float | None = None) -> float | None:
    """The Wilson score-test p-value of ``successes/trials op bound`` (None for ==, !=)."""
    return p_value_for({"successes": np.array([successes]), "trials": np.array([trials])},
                       op, bound, upper)


def probe_interval(fit: Any, stat: str, comparison: ast.Comparison, bound: float,
                   upper: float | None) -> tuple[tuple[float, float], float | None]:
    """A probe claim's interval at its own level (95% without a confidence) and, with a
    confidence, its p-value."""
    level = comparison.confidence
    default = fit.selectivity_interval if stat == "selectivity" else fit.interval
    if level is None:
        return default, None
    op = comparison.op
    if stat == "selectivity":
        diff = fit.differences
        if diff is None:
            return NAN, 1.0
        return bootstrap_mean(diff, level), p_value_for({"samples": diff}, op, bound, upper)
    if fit.task == "regression":
        draws = fit.r2_draws
        if draws is None or draws.size == 0:
            return NAN, 1.0
        alpha = (1 - level) / 2
        interval = (float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha)))
        return interval, percentile_p(draws, op, bound, upper)
    right = fit.correct
    if right is None:
        return NAN, 1.0
    k, n = float(right.sum()), float(right.size)
    return wilson(k, n, level), rate_p(k, n, op, bound, upper)


def lens_p(values: np.ndarray, comparison: ast.Comparison, bound: float, upper: float | None,
           share: float | None) -> float | None:
    """A logit-lens claim's p-value: of the mean (bootstrap), or of the share of samples
    meeting the condition (Wilson, ``≥ share``); None without a confidence."""
    if comparison.confidence is None:
        return None
    if share is None:
        return p_value_for({"samples": values}, comparison.op, bound, upper)
    with np.errstate(invalid="ignore"):
        ok = _OPS[comparison.op](values, bound) & np.isfinite(values)
    return rate_p(float(ok.sum()), float(ok.size), ">=", share)


__all__ = ["lens_p", "probe_interval", "rate_p"]
