"""Outcomes of claims: measured against expected, with the evidence table and plot data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    ``plot_data`` whatever the claim kind's ``plot`` needs.
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


def compare(measured: float, comparison: Comparison, bound: float,
            upper: float | None = None) -> bool:
    """Whether ``measured`` satisfies ``comparison`` (bounds already evaluated). NaN fails."""
    values = [measured, bound] + ([upper] if upper is not None else [])
    if not all(math.isfinite(v) for v in values):
        return False
    if comparison.op == "in":
        return bound <= measured <= upper  # type: ignore[operator]
    if comparison.op == "≈":
        return abs(measured - bound) <= upper  # type: ignore[operator]
    return bool(_OPS[comparison.op](measured, bound))


def expected_text(comparison: Comparison, bound: float, upper: float | None = None) -> str:
    """The expectation as text with evaluated bounds, e.g. '>= 0.99' or 'in [0.1, 0.2]'."""
    if comparison.op == "in":
        return f"in [{fmt(bound)}, {fmt(upper)}]"
    if comparison.op == "≈":
        return f"≈ {fmt(bound)} ± {fmt(upper)}"
    return f"{comparison.op} {fmt(bound)}"


def finite(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)))
