"""``x within 0.05 of baseline``: a value within a tolerance of another (often its baseline).

``baseline`` in any expression is the claim's value recorded in the baseline file
(``--interp-baseline``), so ``exact-match ≥ baseline − 0.5 points`` needs no new syntax; this
kind adds the symmetric form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp_assert.claims.base import Context, register_claim
from interp_assert.claims.compare import Compare
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.language import ast


@register_claim
@dataclass
class Within(Compare):
    """``cos(N1, N132) within 0.05 of baseline``: ``|value - target| <= tolerance``."""

    kind = "within"
    grammar = 'within: expr "within" expr "of" expr'

    @classmethod
    def build(cls, children: list[Any]) -> Within:
        subject, tolerance, target = children
        return cls(subject, ast.Comparison("≈", target, tolerance))

    def __str__(self) -> str:
        return f"{self.subject} within {self.comparison.upper} of {self.comparison.value}"

    def evaluate(self, ctx: Context) -> Outcome:
        outcome = super().evaluate(ctx)
        target = outcome.plot_data.get("bound")
        tolerance = outcome.plot_data.get("upper")
        outcome.expected = f"within {fmt(tolerance)} of {fmt(target)}"
        for row in outcome.rows:
            row["expected"] = outcome.expected
        return outcome
