"""``A·V monotone [increasing|decreasing] [strictly] over digits [with tolerance 0.01]``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.labels import Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def monotone_violations(values: np.ndarray, increasing: bool, strict: bool,
                        tolerance: float = 0.0) -> np.ndarray:
    """Indices i where the step values[i] -> values[i+1] breaks monotonicity.

    Non-strict: a step against the direction by more than ``tolerance`` breaks it. Strict: a
    step that is not in the direction by more than ``-tolerance`` (so with tolerance 0 every
    flat step breaks it). NaN steps always break it, and so does every step under a NaN
    tolerance (the claim kind refuses one before it gets here).
    """
    if math.isnan(tolerance):
        return np.arange(max(len(values) - 1, 0))
    steps = np.diff(values) if increasing else -np.diff(values)
    with np.errstate(invalid="ignore"):
        bad = steps <= -tolerance if strict else steps < -tolerance
    return np.flatnonzero(bad | ~np.isfinite(steps))


@register_claim
@dataclass
class Monotone(Claim):
    """A one-dimensional quantity rises (or falls) along an axis."""

    kind = "monotone"
    grammar = r"""monotone: expr ["is"] _mono_words "over" NAME [tolerance]
_mono_words: "monotone" [DIRECTION] [STRICT] | "monotone" STRICT DIRECTION | [STRICT] DIRECTION
tolerance: "with" "tolerance" expr
DIRECTION: /(increasing|decreasing)\b/
STRICT: /strictly\b/"""

    subject: ast.Node
    axis: str
    direction: str | None = None
    strict: bool = False
    tolerance: ast.Node | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Monotone:
        subject, *words, axis, tolerance = children
        direction = next((str(w) for w in words if w is not None and w.type == "DIRECTION"), None)
        strict = any(w is not None and w.type == "STRICT" for w in words)
        tol = tolerance.children[0] if tolerance is not None else None
        return cls(subject, str(axis), direction, strict, tol)

    def __str__(self) -> str:
        words = " ".join(w for w in ("monotone", self.direction,
                                     "strictly" if self.strict else None) if w)
        tol = f" with tolerance {self.tolerance}" if self.tolerance is not None else ""
        return f"{self.subject} {words} over {self.axis}{tol}"

    def evaluate(self, ctx: Context) -> Outcome:
        quantity = ctx.value(self.subject)
        series = _along(quantity, self.axis)
        values = series.values
        if values.size < 2:
            raise QuantityError(
                f"'{self.subject}' has {values.size} value(s) over {self.axis}; 'monotone' needs "
                "at least two values", hint="check the quantity's shape and any indexing")
        tolerance = ctx.scalar(self.tolerance) if self.tolerance is not None else 0.0
        if math.isnan(tolerance) or tolerance < 0:
            raise QuantityError(f"the tolerance of '{self}' is {fmt(tolerance)}; it must be a "
                                "number >= 0 (NaN cannot decide a claim)",
                                hint="check the tolerance's expression, e.g. 'with tolerance "
                                     "0.01'")
        directions = [self.direction == "increasing"] if self.direction else [True, False]
        results = {inc: monotone_violations(values, inc, self.strict, tolerance)
                   for inc in directions}
        increasing = min(results, key=lambda inc: (len(results[inc]), _worst(values, inc)))
        violations = results[increasing]
        steps = np.diff(values) if increasing else -np.diff(values)
        labels = series.labels_of(0)
        word = "increasing" if increasing else "decreasing"
        passed = len(violations) == 0 and bool(np.all(np.isfinite(values)))
        worst_step = float(np.min(steps)) if steps.size else float("nan")
        if passed:
            measured = f"{word}; smallest step {fmt(worst_step)}"
        else:
            i = int(violations[np.argmin(steps[violations])]) if steps.size else 0
            measured = (f"{len(violations)} step(s) against {word}; worst "
                        f"{labels[i]}→{labels[i + 1]} by {fmt(float(steps[i]))}")
        expected = (f"{'strictly ' if self.strict else ''}{self.direction or 'monotone'} "
                    f"over {self.axis}" + (f" (tolerance {fmt(tolerance)})" if tolerance else ""))
        rows = [{"from": labels[i], "to": labels[i + 1], "step": float(np.diff(values)[i]),
                 "holds": i not in set(violations.tolist())} for i in range(len(values) - 1)]
        return Outcome(passed, measured, expected, value=worst_step, rows=rows,
                       plot_data={"labels": labels, "values": values.tolist(),
                                  "violations": violations.tolist(), "word": word})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.plots import FAIL, nan_columns, nan_patch

        data = outcome.plot_data
        values = np.asarray(data["values"], dtype=float)
        x = np.arange(len(values))
        ax.plot(x, values, "o-", color="C0", label=str(self.subject))
        for i in data["violations"]:
            ax.plot([i, i + 1], [values[i], values[i + 1]], "-", color=FAIL, linewidth=3,
                    label=(f"step against the direction ({len(data['violations'])})"
                           if i == data["violations"][0] else None))
        handles, _ = ax.get_legend_handles_labels()
        nan = np.flatnonzero(~np.isfinite(values)).tolist()
        if nan:
            nan_columns(ax, nan)
            handles.append(nan_patch(f"NaN value ({len(nan)}; never passes)"))
        ax.set_xticks(x, data["labels"], rotation=90 if len(x) > 20 else 0)
        ax.set_xlabel(self.axis)
        ax.set_ylabel(str(self.subject))
        ax.set_title(f"{self.subject}: expected {data['word'] if self.direction else 'monotone'}",
                     fontsize=9)
        ax.legend(handles=handles, loc="best", fontsize=8)
        ax.grid(alpha=0.3)


def _worst(values: np.ndarray, increasing: bool) -> float:
    steps = np.diff(values) if increasing else -np.diff(values)
    return -float(np.min(steps)) if steps.size else 0.0


def _along(quantity: Labelled, axis_name: str) -> Labelled:
    quantity.axis(axis_name)  # raises with a did-you-mean when the axis is unknown
    if quantity.ndim != 1:
        raise QuantityError(
            f"'{quantity.name}' has shape {quantity.shape}; 'monotone over {axis_name}' needs a "
            "single axis", hint=f"index the other axes, e.g. {quantity.name}[...] or mean(...)")
    return quantity
