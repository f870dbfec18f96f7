"""Comparisons: a scalar against bounds, and all/any/mean/max/min over several elements."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, check_bounds, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast
from interp_assert.language.ast import referenced_names
from interp_assert.plan.sequential import is_sequential


def evaluate_bounds(ctx: Context, comparison: ast.Comparison) -> tuple[float, float | None]:
    """The comparison's bound(s) as numbers; a NaN bound, a reversed interval or a negative
    tolerance is an error. A bound written with ``baseline`` may be NaN: a missing baseline
    value, which the judge fails with the command that records it."""
    bound = ctx.scalar(comparison.value)
    upper = ctx.scalar(comparison.upper) if comparison.upper is not None else None
    nodes = [comparison.value] + ([comparison.upper] if comparison.upper is not None else [])
    relative = any("baseline" in referenced_names(node) for node in nodes)
    check_bounds(comparison, bound, upper, allow_nan=relative)
    return bound, upper


#: expression nodes that read a quantity's values only (a distribution's per-channel means):
#: no function (``mode``, ``centred`` ... read the raw samples), mask or position
_VALUE_NODES = (ast.Ref, ast.Number, ast.Index, ast.Slice, ast.BinOp, ast.Neg, ast.Vector)


def _reads_values_only(node: Any) -> bool:
    if isinstance(node, ast.Members):
        return node.source is None or _reads_values_only(node.source)
    if not isinstance(node, _VALUE_NODES):
        return False
    return all(_reads_values_only(item) for child in vars(node).values()
               for item in (child if isinstance(child, tuple) else (child,))
               if isinstance(item, ast.Node | ast.Members))


def values_only(claim: Claim, definitions: Any, comparison: ast.Comparison) -> set[str]:
    """The quantities a comparison reads only as values, with no interval (the plan keeps no
    raw samples of a distribution quantity read so: its memory does not grow with the data)."""
    if comparison.confidence is not None or is_sequential(comparison):
        return set()
    nodes = list(claim.expressions())
    if not all(_reads_values_only(node) for node in nodes):
        return set()
    return {name for node in nodes for name in referenced_names(node) if name in definitions}


def judged_value(value: float, interval: tuple[float, float] | None,
                 comparison: ast.Comparison) -> float | tuple[float, float]:
    """With ``with N% confidence`` the conservative end of the interval is judged."""
    if comparison.confidence is None or interval is None:
        return value
    low, high = interval
    if comparison.op in (">", ">="):
        return low
    if comparison.op in ("<", "<="):
        return high
    return (low, high)


@register_claim
@dataclass
class Compare(Claim):
    """``exact-match >= 99%``, ``norm(N1) in [0.5, 2]``, ``x ≈ 1 ± 0.1``."""

    kind = "compare"
    grammar = "compare: expr comparison"

    subject: ast.Node
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> Compare:
        return cls(children[0], children[1])

    def __str__(self) -> str:
        return f"{self.subject} {self.comparison}"

    def lean_quantities(self, definitions: Any) -> set[str]:
        return values_only(self, definitions, self.comparison)

    def evaluate(self, ctx: Context) -> Outcome:
        quantity = ctx.value(self.subject)
        measured = quantity.scalar()
        bound, upper = evaluate_bounds(ctx, self.comparison)
        if is_sequential(self.comparison):
            from interp_assert.claims.sequential import sequential_outcome

            return sequential_outcome(self.subject, self.comparison, quantity, bound, upper)
        interval, pairing = _interval(ctx, quantity, self.comparison)
        judged = judged_value(measured, interval, self.comparison)
        if isinstance(judged, tuple):
            passed = all(compare(v, self.comparison, bound, upper) for v in judged)
        else:
            passed = compare(judged, self.comparison, bound, upper)
        expected = expected_text(self.comparison, bound, upper)
        measured_text = fmt(measured)
        if interval is not None:
            level = self.comparison.confidence or quantity.meta.get("level", 0.95)
            measured_text += f" ({level:.0%} CI [{fmt(interval[0])}, {fmt(interval[1])}])"
        if self.comparison.confidence is not None:
            expected += f" for the whole {self.comparison.confidence:.0%} interval"
        rows = [{"quantity": str(self.subject), "measured": measured,
                 "expected": expected_text(self.comparison, bound, upper),
                 "holds": passed}]
        if interval is not None:
            rows[0]["ci_low"], rows[0]["ci_high"] = interval
        from interp_assert.claims.confidence import method_text, unit_meta

        notes = [pairing or f"interval: {method_text(quantity.meta)}"] if (
            interval is not None and self.comparison.confidence is not None) else []
        meta = unit_meta(quantity.meta)
        if self.comparison.confidence is not None:
            meta["confidence"] = self.comparison.confidence
        return Outcome(passed, measured_text, expected, value=measured, rows=rows, notes=notes,
                       interval=interval, context=dict(quantity.meta.get("context", {})),
                       p_value=_p_value(quantity, self.comparison, bound, upper),
                       plot_data={"values": {str(self.subject): measured}, "bound": bound,
                                  "upper": upper, "interval": interval},
                       meta=meta)

    def plot(self, outcome: Outcome, ax: Any) -> None:
        """A sequential claim draws its confidence sequence over the samples read."""
        if "sequence" not in outcome.plot_data:
            return super().plot(outcome, ax)
        from interp_assert.claims.sequential import plot_sequence

        plot_sequence(outcome, ax)


def _interval(ctx: Context, quantity: Any, comparison: ast.Comparison
              ) -> tuple[tuple[float, float] | None, str]:
    """The value's interval (and how it pairs with the baseline, for a confidence claim
    relative to ``baseline``)."""
    from interp_assert.claims.confidence import baseline_interval
    from interp_assert.evaluate.intervals import interval_of

    nodes = [comparison.value] + ([comparison.upper] if comparison.upper is not None else [])
    if comparison.confidence is not None and any("baseline" in referenced_names(node)
                                                 for node in nodes):
        return baseline_interval(quantity.meta, ctx, comparison.confidence)
    return interval_of(quantity.meta, comparison.confidence or 0.95), ""


def _p_value(quantity: Any, comparison: ast.Comparison, bound: float,
             upper: float | None) -> float | None:
    """The p-value of a ``with N% confidence`` comparison (None without confidence)."""
    if comparison.confidence is None:
        return None
    from interp_assert.evaluate.pvalues import p_value_for

    return p_value_for(quantity.meta, comparison.op, bound, upper)


AGGREGATES = ("all", "any", "mean", "max", "min")


@register_claim
@dataclass
class Aggregate(Claim):
    """``all of N1,N132 norm > 0.5``: a comparison over several elements."""

    kind = "aggregate"
    grammar = r"""aggregate: AGG "of" members [NAME] comparison
AGG: /all|any|mean|max|min/"""

    how: str
    members: ast.Members
    function: str | None
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> Aggregate:
        how, members, function, comparison = children
        return cls(str(how), members, str(function) if function else None, comparison)

    def __str__(self) -> str:
        func = f" {self.function}" if self.function else ""
        return f"{self.how} of {self.members}{func} {self.comparison}"

    def lean_quantities(self, definitions: Any) -> set[str]:
        return set() if self.function else values_only(self, definitions, self.comparison)

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.evaluate.quantities.functions import apply_function

        rows_q = ctx.members(self.members)
        labels = rows_q.labels_of(0) if rows_q.ndim else [str(self.members)]
        values: list[tuple[str, float]] = []
        if rows_q.ndim and not self.function:  # all rows at once: no per-row copies
            values = element_values(labels, rows_q.values)
            labels = []
        for i, label in enumerate(labels):
            row = rows_q.take(0, [i], keep=False) if rows_q.ndim else rows_q
            if self.function:
                row = apply_function(self.function, [row])
            flat = row.values.reshape(-1)
            if flat.size == 1:
                values.append((label, float(flat[0])))
            else:
                inner = [f"{label}[{j}]" for j in range(flat.size)]
                values.extend(zip(inner, map(float, flat)))
        if not values:
            raise QuantityError(f"'{self.members}' selects no elements")
        bound, upper = evaluate_bounds(ctx, self.comparison)
        holds = [compare(v, self.comparison, bound, upper) for _, v in values]
        numbers = np.array([v for _, v in values])
        what = f"{self.function} " if self.function else ""
        if self.how in ("all", "any"):
            passed = all(holds) if self.how == "all" else any(holds)
            label, value = _extreme(values, self.comparison, bound, upper,
                                    best=self.how == "any")
            measured = (f"{sum(holds)}/{len(holds)} elements hold; "
                        f"{'best' if self.how == 'any' else 'worst'} {label} {what}= {fmt(value)}")
        else:
            value = float(getattr(np, self.how)(numbers))
            passed = compare(value, self.comparison, bound, upper)
            measured = f"{self.how} {what}over {len(values)} elements = {fmt(value)}"
        expected = f"{self.how} {expected_text(self.comparison, bound, upper)}"
        rows = [{"element": lab, "value": v, "holds": h} for (lab, v), h in zip(values, holds)]
        return Outcome(passed, measured, expected, value=value, rows=rows,
                       plot_data={"values": dict(values), "bound": bound, "upper": upper})


def element_values(labels: list[str], array: np.ndarray) -> list[tuple[str, float]]:
    """(label, value) of every element of ``array`` (rows labelled by ``labels``): a row of
    one element by its label, a longer row's elements as ``label[j]``."""
    if not labels:
        return []
    flat = np.asarray(array).reshape(len(labels), -1).astype(np.float64).tolist()
    if flat and len(flat[0]) == 1:
        return [(label, row[0]) for label, row in zip(labels, flat)]
    return [(f"{label}[{j}]", v) for label, row in zip(labels, flat) for j, v in enumerate(row)]


def _extreme(values: list[tuple[str, float]], comparison: ast.Comparison, bound: float,
             upper: float | None, best: bool) -> tuple[str, float]:
    """The element furthest on the failing side (or, with ``best``, the passing side).

    NaN counts as the furthest on the failing side: ``all`` reports it, ``any`` reports a
    finite element whenever there is one (whatever the order of the elements)."""
    margins = [_margin(value, comparison, bound, upper) for _, value in values]
    pick = max if best else min
    index = pick(range(len(values)), key=margins.__getitem__)
    return values[index]


def _margin(value: float, comparison: ast.Comparison, bound: float,
            upper: float | None) -> float:
    """How far ``value`` lies on the passing side of the comparison (negative: failing)."""
    op = comparison.op
    if op in (">", ">="):
        margin = value - bound
    elif op in ("<", "<="):
        margin = bound - value
    elif op == "in":
        margin = min(value - bound, upper - value)  # type: ignore[operator]
    elif op == "≈":
        margin = upper - abs(value - bound)  # type: ignore[operator]
    elif op == "==":
        margin = -abs(value - bound)
    else:  # !=
        margin = abs(value - bound)
    return float(margin) if math.isfinite(value) and not math.isnan(margin) else -math.inf

