"""Direct logit attribution claims: ``L1H2 contributes ≥ 50% of logit-diff at A3`` (a share of
the model's logit difference), ``MLP1 contributes ≥ 2 to logit-diff at A3`` (logits), and
``L0H0, MLP1 in top 3 contributors to logit-diff at A3``.

The logit difference is the answer token's logit minus the token in a dataset field
(``vs FIELD``), else minus the mean logit; the decomposition is in
:mod:`interp_assert.evaluate.logit_attribution`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from interp_assert.claims.base import Claim, Context, planned_dataset, register_claim
from interp_assert.claims.compare import evaluate_bounds, judged_value
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from interp_assert.evaluate.logit_attribution import Attribution

_TARGET = r"""
_dla_target: "logit-diff" [dla_vs] [dla_at]
dla_vs: "vs" NAME
dla_at: "at" label"""


def _target(vs: Any, at: Any) -> tuple[str | None, str | None]:
    return (str(vs.children[0]) if vs else None, at.children[0][0] if at else None)


class _Attributing(Claim):
    """What both kinds share: the target, the plan and the measurement."""

    contrast: str | None
    answer: str | None
    #: a template's instances each plan their sinks, so one pass serves every instance
    plans_instances: ClassVar[bool] = True
    #: whether the claim reads every component (a ranking), not only its own
    every: ClassVar[bool] = False

    def components(self) -> list[str]:
        raise NotImplementedError

    def target_text(self) -> str:
        text = "logit-diff" + (f" vs {self.contrast}" if self.contrast else "")
        return text + (f" at {self.answer}" if self.answer else "")

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        from interp_assert.evaluate.logit_attribution import planned

        spec = planned_dataset(claim_file, dataset)
        if spec is None:
            return []
        sinks = planned(spec, self.answer, self.contrast, self.components(), self.every)
        return [(dataset, key, make) for key, make in sinks]

    def measure(self, ctx: Context, every: bool = False) -> Attribution:
        from interp_assert.evaluate.logit_attribution import attribute

        return attribute(ctx, ctx.dataset_spec(ctx.dataset), self.answer, self.contrast,
                         self.components(), every or self.every)


@register_claim
@dataclass
class Contributes(_Attributing):
    """A component's mean direct logit attribution, as a share of the mean logit difference
    (``of``) or in logits (``to``)."""

    kind = "dla_share"
    grammar = r"""
dla_share: label "contributes" CMP expr DLA_REL _dla_target [confidence]
DLA_REL: /(of|to)(?![\w-])/""" + _TARGET

    component: str
    comparison: ast.Comparison
    relative: bool
    contrast: str | None = None
    answer: str | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Contributes:
        label, op, bound, rel, vs, at, confidence = children
        contrast, answer = _target(vs, at)
        return cls(label[0], ast.Comparison(ast.comparison_op(op), bound,
                                            confidence=ast.confidence_level(confidence)),
                   str(rel) == "of", contrast, answer)

    def components(self) -> list[str]:
        return [self.component]

    def __str__(self) -> str:
        confidence = ""
        if self.comparison.confidence is not None:
            confidence = f" with {ast.Number(self.comparison.confidence, '%')} confidence"
        return (f"{self.component} contributes {self.comparison.op} {self.comparison.value} "
                f"{'of' if self.relative else 'to'} {self.target_text()}{confidence}")

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.evaluate.stats import bootstrap_mean

        found = self.measure(ctx)
        bound, upper = evaluate_bounds(ctx, self.comparison)
        total = float(np.mean(found.total))
        scale = total if self.relative else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = found.column(self.component) / scale
        # NaN never passes: a logit difference that is not finite has no decomposition
        whole = bool(np.all(np.isfinite(found.total))) and np.isfinite(scale) and scale != 0
        value = float(samples.mean()) if whole else float("nan")
        level = self.comparison.confidence or 0.95
        interval = bootstrap_mean(samples, level)
        judged = judged_value(value, interval, self.comparison)
        passed = (all(compare(v, self.comparison, bound, upper) for v in judged)
                  if isinstance(judged, tuple) else compare(judged, self.comparison, bound,
                                                            upper))
        unit = "of the logit difference" if self.relative else "logits"
        shown = (f"{fmt(value * 100)}%" if self.relative else fmt(value))
        measured = (f"{self.component} contributes {shown} {unit} "
                    f"({level:.0%} CI [{fmt(interval[0])}, {fmt(interval[1])}]); mean "
                    f"logit difference {fmt(total)} over {found.total.size} samples")
        expected = expected_text(self.comparison, bound, upper)
        if self.comparison.confidence is not None:
            expected += f" for the whole {level:.0%} interval"
        column = found.column(self.component)
        rows = [{"component": self.component, "mean": float(column.mean()),
                 "share": float(column.mean() / total) if total else float("nan"),
                 "logit-diff": total, "samples": int(column.size), "holds": passed}]
        return Outcome(passed, measured, expected, value=value, rows=rows, interval=interval,
                       plot_data={"labels": [self.component], "values": [value],
                                  "claimed": {self.component: passed}, "bound": bound,
                                  "unit": "share of the mean logit difference" if self.relative
                                  else "mean contribution (logits)",
                                  "title": f"direct logit attribution to {self.target_text()}"
                                           f" (mean logit difference {fmt(total)})"})

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """Every component's mean, for the bar chart (a pass of its own, only for a plot)."""
        found = self.measure(ctx, every=True)
        total = float(np.mean(found.total))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = found.values.mean(axis=0) / (total if self.relative else 1.0)
        outcome.plot_data["labels"] = found.labels
        outcome.plot_data["values"] = means.tolist()

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.lens_plots import plot_contributions

        plot_contributions(outcome, ax)


@register_claim
@dataclass
class TopContributors(_Attributing):
    """Every listed component is among the ``k`` largest mean contributions (signed)."""

    kind = "dla_top"
    grammar = r"""
dla_top: dla_parts "in" "top" INT "contributors" "to" _dla_target
dla_parts: label ("," label)*"""

    every: ClassVar[bool] = True
    parts: tuple[str, ...]
    k: int
    contrast: str | None = None
    answer: str | None = None

    @classmethod
    def build(cls, children: list[Any]) -> TopContributors:
        parts, k, vs, at = children
        contrast, answer = _target(vs, at)
        return cls(tuple(label[0] for label in parts.children), int(k), contrast, answer)

    def components(self) -> list[str]:
        return list(self.parts)

    def __str__(self) -> str:
        return f"{', '.join(self.parts)} in top {self.k} contributors to {self.target_text()}"

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.claims.ranking import ranks

        found = self.measure(ctx)
        means = found.values.mean(axis=0)
        if not np.all(np.isfinite(found.total)):  # NaN never passes: nothing to decompose
            means = np.full_like(means, np.nan)
        labels = found.labels
        if not 1 <= self.k <= len(labels):
            raise QuantityError(f"'top {self.k}' of {len(labels)} components",
                                hint=f"use a k between 1 and {len(labels)}")
        rank = ranks(means)
        rows, passed = [], True
        for label in self.parts:
            i = labels.index(label)
            ok = bool(rank[i] <= self.k and np.isfinite(means[i]))
            passed = passed and ok
            rows.append({"component": label, "mean": float(means[i]),
                         "rank": int(rank[i]), "holds": ok})
        worst = max(rows, key=lambda r: r["rank"])
        measured = (f"{worst['component']} ranks {worst['rank']} of {len(labels)} "
                    f"(mean {fmt(worst['mean'])} logits)")
        return Outcome(passed, measured, f"every listed component within the top {self.k}",
                       value=float(worst["rank"]), rows=rows,
                       plot_data={"labels": labels, "values": means.tolist(),
                                  "claimed": {r["component"]: r["holds"] for r in rows},
                                  "bound": None, "unit": "mean contribution (logits)",
                                  "title": f"direct logit attribution to {self.target_text()}: "
                                           f"claimed components must be in the top {self.k}"})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.lens_plots import plot_contributions

        plot_contributions(outcome, ax)
