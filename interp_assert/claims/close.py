"""``A·V ≈ [0.74, 2.83, 4.0] within 0.1``: every element close to its expected value.

Both sides are evaluated (the right side is typically a vector literal, but any quantity of the
same shape works); the claim holds when every |measured - expected| is at most the tolerance.
The headline value is the largest deviation; a NaN on either side is a deviation of NaN, which
never passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@register_claim
@dataclass
class Close(Claim):
    """Each element of the left side within the tolerance of the right side's element."""

    kind = "close"
    grammar = 'close: expr APPROX expr "within" expr'

    subject: ast.Node
    expected: ast.Node
    tolerance: ast.Node

    @classmethod
    def build(cls, children: list[Any]) -> Close:
        subject, _approx, expected, tolerance = children
        return cls(subject, expected, tolerance)

    def __str__(self) -> str:
        return f"{self.subject} ≈ {self.expected} within {self.tolerance}"

    def evaluate(self, ctx: Context) -> Outcome:
        measured, expected = ctx.value(self.subject), ctx.value(self.expected)
        tolerance = ctx.scalar(self.tolerance)
        if not math.isfinite(tolerance) or tolerance < 0:
            raise QuantityError(f"the tolerance must be a number >= 0, not {fmt(tolerance)}")
        if measured.values.size != expected.values.size:
            raise QuantityError(
                f"'{self.subject}' has {measured.values.size} elements (shape "
                f"{measured.shape}) but '{self.expected}' has {expected.values.size}",
                hint="give one expected value per element")
        got = measured.values.reshape(-1).astype(float)
        want = expected.values.reshape(-1).astype(float)
        labels = (measured.labels_of(0) if measured.ndim == 1
                  else [str(i) for i in range(got.size)])
        deviation = np.abs(got - want)
        holds = deviation <= tolerance  # NaN compares False: it fails
        rows = [{"element": label, "measured": float(g), "expected": float(w),
                 "|deviation|": float(d), "holds": bool(h)}
                for label, g, w, d, h in zip(labels, got, want, deviation, holds)]
        worst = float(np.max(deviation)) if not np.isnan(deviation).any() else math.nan
        failing = int(np.sum(~holds))
        text = f"largest |deviation| {fmt(worst)}; {failing} of {got.size} elements outside"
        return Outcome(bool(holds.all()), text, f"every element within {fmt(tolerance)}",
                       value=worst, rows=rows,
                       plot_data={"labels": labels, "measured": got, "expected": want,
                                  "tolerance": tolerance, "holds": holds})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        x = np.arange(len(data["labels"]))
        want, tol = np.asarray(data["expected"]), data["tolerance"]
        ax.fill_between(x, want - tol, want + tol, step="mid", color="tab:blue", alpha=0.15,
                        label=f"expected ± {fmt(tol)}")
        ax.plot(x, want, "_", color="tab:blue", markersize=14, label="expected")
        got, holds = np.asarray(data["measured"]), np.asarray(data["holds"])
        ax.plot(x[holds], got[holds], "o", color="tab:green", label="measured, within")
        if (~holds).any():
            shown = np.where(np.isnan(got), want, got)  # a NaN is drawn at its expected place
            ax.plot(x[~holds], shown[~holds], "X", color="red", markersize=9,
                    label="measured, outside (NaN drawn at the expected value)"
                    if np.isnan(got).any() else "measured, outside")
        ax.set_xticks(x, data["labels"], rotation=90 if len(x) > 12 else 0, fontsize=8)
        ax.legend(loc="best", fontsize=8)
        ax.set_title("measured against expected values", fontsize=9)
