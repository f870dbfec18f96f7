"""Outcomes of claims: measured against expected, with the evidence table and plot data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.language.ast import Comparison

_OPS = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass
class Outcome:
    """What a claim measured and whether it holds.

    ``value`` is the headline number (recorded in results and baselines), ``measured`` and
    ``expected`` are the one-line texts of the report, ``rows`` the evidence table, and
    ``plot_data`` whatever the claim kind's ``plot`` needs, ``p_value`` the p-value of a
    ``with N% confidence`` claim (any kind may set it; see judge/error_control.py).
    """

    passed: bool
    measured: str
    expected: str
    value: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plot_data: dict[str, Any] = field(default_factory=dict)
    interval: tuple[float, float] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    #: a confidence claim's one-sided p-value for "the true value clears the bound" (the
    #: interval's inverse, evaluate/pvalues.py); run-level error control reads it. None: none
    p_value: float | None = None
    #: the per-unit values an interval of ``value`` is built from, in the keys of a value's
    #: meta (``samples``, ``successes``/``trials``, ``clusters``, ``paired``; see
    #: :mod:`interp_assert.evaluate.intervals`)
    meta: dict[str, Any] = field(default_factory=dict)
    #: a sequential claim's samples used, budget, whether it was decided, its confidence
    #: sequence and (undecided) the samples estimated to decide it (claims/sequential.py)
    sequential: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            if self.passed:
                self.notes.append("the measured value is not finite: NaN or inf never passes")
            self.passed = False


def fmt(value: float | None, digits: int = 4) -> str:
    """Compact number text for reports."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def check_bounds(comparison: Comparison, bound: float, upper: float | None = None,
                 allow_nan: bool = False) -> None:
    """Refuse bounds that cannot decide a claim: NaN (unless ``allow_nan``: then the claim
    fails), a reversed interval ``in [2, 0.5]``, a negative ``±`` tolerance. Infinite bounds
    are fine: they compare as IEEE says."""
    if not allow_nan and (math.isnan(bound) or (upper is not None and math.isnan(upper))):
        which = "tolerance" if comparison.op == "≈" and upper is not None and math.isnan(
            upper) else "bound"
        raise QuantityError(f"the {which} of '{comparison}' is NaN: NaN cannot decide a claim",
                            hint="check the expression of the bound (0/0, log of a negative "
                                 "number, a NaN quantity)")
    if comparison.op == "in" and upper is not None and bound > upper:
        raise QuantityError(f"the interval of '{comparison}' is reversed: [{fmt(bound)}, "
                            f"{fmt(upper)}] holds no value",
                            hint=f"write the lower bound first: in [{fmt(upper)}, {fmt(bound)}]")
    if comparison.op == "≈" and upper is not None and upper < 0:
        raise QuantityError(f"the tolerance of '{comparison}' is negative ({fmt(upper)})",
                            hint=f"write ± {fmt(-upper)}")


def compare(measured: float, comparison: Comparison, bound: float,
            upper: float | None = None) -> bool:
    """Whether ``measured`` satisfies ``comparison`` (bounds already evaluated).

    A NaN or infinite measured value fails, and so does any comparison with a NaN bound
    (claim kinds refuse NaN bounds with an error first, through
    :func:`interp_assert.claims.compare.evaluate_bounds`); infinite bounds compare as IEEE
    says (``x < inf`` holds for every finite x); reversed intervals and negative tolerances
    are errors (:func:`check_bounds`)."""
    check_bounds(comparison, bound, upper, allow_nan=True)
    if not math.isfinite(measured) or math.isnan(bound) or (upper is not None
                                                            and math.isnan(upper)):
        return False
    if comparison.op == "in":
        return bool(bound <= measured <= upper)  # type: ignore[operator]
    if comparison.op == "≈":
        if math.isinf(bound):
            return False  # a finite value is infinitely far from ±inf, whatever the tolerance
        return bool(abs(measured - bound) <= upper)  # type: ignore[operator]
    if comparison.op in ("==", "!=") and math.isinf(bound):
        return comparison.op == "!="
    return bool(_OPS[comparison.op](measured, bound))


def decide(interval: tuple[float, float], comparison: Comparison, bound: float,
           upper: float | None = None) -> bool | None:
    """The verdict shared by every value in ``interval`` (where an approximate statistic's true
    value lies), or None when part of the interval holds and part fails."""
    low, high = interval
    at_low, at_high = compare(low, comparison, bound, upper), compare(high, comparison, bound,
                                                                      upper)
    if low == high:
        return at_low
    op = comparison.op
    if op in (">", ">=", "<", "<="):  # one threshold: the ends decide
        return at_low if at_low == at_high else None
    if op in ("in", "≈"):  # a convex set of passing values
        if at_low and at_high:
            return True
        lower, top = ((bound, upper) if op == "in"
                      else (bound - upper, bound + upper))  # type: ignore[operator]
        return False if high < lower or low > top else None  # type: ignore[operator]
    # == and !=: decided only when the bound is clearly outside the interval
    close = _OPS["=="]
    inside = low <= bound <= high or close(low, bound) or close(high, bound)
    return None if inside else op == "!="


def expected_text(comparison: Comparison, bound: float, upper: float | None = None) -> str:
    """The expectation as text with evaluated bounds, e.g. '>= 0.99' or 'in [0.1, 0.2]'."""
    if comparison.op == "in":
        return f"in [{fmt(bound)}, {fmt(upper)}]"
    if comparison.op == "≈":
        return f"≈ {fmt(bound)} ± {fmt(upper)}"
    return f"{comparison.op} {fmt(bound)}"


def finite(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)))
