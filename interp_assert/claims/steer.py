"""Steering: add ``scale × direction`` to a hook's output at some positions and claim the effect
on a metric, as the ablation claims do.

* ``steer blocks.1.hook_resid_pre at A4 by +4 · carry-direction: logit-diff rises by ≥ 2``
* ``steer blocks.0.hook_resid_post at A4 by 1 * mean-diff of blocks.0.hook_resid_post at A4
  by carry[5]: digit-error at A5 rises by ≥ 40 points``
* ``steer blocks.0.hook_resid_post at A4 by -3 * probe of blocks.0.hook_resid_post at A4 for
  carry[5]: ...``

The direction is an expression (a quantity, a weight row such as ``digit_unembed[:, 4]``), a
difference of means of an activation between the samples whose label is non-zero and those
whose label is zero, or the weight vector of a binary logistic probe mapped back to the
activation's units. Expressions and mean differences are used as given (``unit`` after them
divides by the norm); a probe's direction is always unit norm. ``·``, ``⋅``, ``×`` and ``*``
all read as times. Without ``at`` every position is steered. ``... rises by ≥ 2 with 95%
confidence`` judges the paired bootstrap interval of the effect over the samples (each
sample's metric unsteered and steered; :mod:`interp_assert.claims.confidence`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from lark import Tree

from interp_assert.claims.base import Claim, Context, planned_dataset, register_claim
from interp_assert.claims.causal_base import Effect, effect_from
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.confidence import paired_meta, with_confidence
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.claims.planned_passes import (
    Planned,
    PlannedPass,
    announce_aliased,
    announce_metric,
    by_text,
    metric_sinks,
    on_pass,
)
from interp_assert.claims.probe import (
    Target,
    planned_position_sink,
    probe_labels,
    seed_from,
    target_from,
)
from interp_assert.errors import QuantityError
from interp_assert.evaluate.interventions import effect_of
from interp_assert.evaluate.probing import (
    activation_at,
    fit_classifier,
    mean_difference,
    position_of,
)
from interp_assert.evaluate.steering import steering, unit
from interp_assert.labels import Labelled
from interp_assert.language import ast
from interp_assert.loading.data import load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STEER_GRAMMAR = r"""
steer: "steer" NAME [steer_at] "by" STEER_SCALE STEER_TIMES steer_direction ":" causal_effect
steer_at: "at" label ("," label)*
steer_direction: postfix [STEER_UNIT]                                   -> steer_vector
    | "mean-diff" "of" NAME "at" label "by" probe_target [STEER_UNIT]   -> steer_mean_diff
    | "probe" "of" NAME "at" label "for" probe_target [probe_seed]      -> steer_probe
STEER_SCALE: /[+\-−]?\d+(\.\d+)?([eE][+-]?\d+)?/
STEER_TIMES: /·|⋅|×|\*/
STEER_UNIT: /unit\b/"""
#: the plot's sweep: the metric at these multiples of the claimed scale
SWEEP = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Direction:
    """Where the steering direction comes from: ``expr`` (an expression), or ``mean-diff`` /
    ``probe`` of an activation (``hook`` at ``position``) by a label."""

    how: str  # expr, mean-diff or probe
    expr: ast.Node | None = None
    hook: str = ""
    position: str = ""
    target: Target | None = None
    unit: bool = False
    seed: int | None = None

    def __str__(self) -> str:
        if self.how == "expr":
            return f"{self.expr}{' unit' if self.unit else ''}"
        if self.how == "mean-diff":
            return (f"mean-diff of {self.hook} at {ast.quote_if_needed(self.position)} by "
                    f"{self.target}"
                    f"{' unit' if self.unit else ''}")
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return (f"probe of {self.hook} at {ast.quote_if_needed(self.position)} for "
                f"{self.target}{seed}")

    def vector(self, ctx: Context) -> np.ndarray:
        """The direction as a float64 vector (normalised when ``unit``, or a probe's)."""
        if self.how == "expr":
            assert self.expr is not None
            value = np.asarray(ctx.value(self.expr).values, dtype=np.float64).reshape(-1)
        else:
            assert self.target is not None
            spec = ctx.dataset_spec()
            x = activation_at(ctx, spec, self.hook, self.position)
            labels = probe_labels(ctx, self.target, self.position)
            if self.how == "mean-diff":
                value = mean_difference(x, labels, str(self.target))
            else:
                fit = fit_classifier(x, labels, self.seed or 0, str(self.target))
                if fit.direction is None:
                    raise QuantityError(f"'{self.target}' has {len(fit.classes)} classes; a "
                                        "probe direction needs a binary label",
                                        hint="use a 0/1 field, or a mean-diff direction")
                return unit(fit.direction)
        return unit(value) if self.unit else value


def direction_from(tree: Tree) -> Direction:
    if tree.data == "steer_vector":
        expr, unit_word = tree.children
        return Direction("expr", expr=expr, unit=unit_word is not None)
    if tree.data == "steer_mean_diff":
        hook, position, target, unit_word = tree.children
        return Direction("mean-diff", hook=str(hook), position=ast.label_text(position),
                         target=target_from(target), unit=unit_word is not None)
    hook, position, target, seed = tree.children
    return Direction("probe", hook=str(hook), position=ast.label_text(position),
                     target=target_from(target), seed=seed_from(seed))


@register_claim
@dataclass
class Steer(Claim):
    """``steer HOOK [at POSITIONS] by SCALE · DIRECTION: METRIC rises by ≥ X``."""

    kind = "steer"
    grammar = STEER_GRAMMAR

    hook: str
    positions: tuple[str, ...] | None
    scale: float
    scale_text: str
    direction: Direction
    effect: Effect

    @classmethod
    def build(cls, children: list[Any]) -> Steer:
        hook, at, scale, _times, direction, effect = children
        text = str(scale).replace("−", "-")
        made = cls(str(hook), None if at is None else tuple(ast.label_text(item)
                                                            for item in at.children),
                   float(text), text, direction_from(direction), effect_from(effect))
        if made.effect.change == "recovers":
            raise QuantityError("'recovers' belongs to patching; steering claims use 'rises "
                                "by', 'drops by' or 'changes by'")
        return made

    def __str__(self) -> str:
        at = f" at {', '.join(map(ast.quote_if_needed, self.positions))}" \
            if self.positions else ""
        return f"steer {self.hook}{at} by {self.scale_text} · {self.direction}: {self.effect}"

    def expressions(self) -> Iterator[ast.Node | ast.Members]:
        yield self.effect.metric.expr
        yield self.effect.comparison.value
        if self.effect.comparison.upper is not None:
            yield self.effect.comparison.upper
        if self.direction.expr is not None:
            yield self.direction.expr

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        metric = [(spec.name, key, factory) for spec, key, factory in metric_sinks(
            claim_file, self.effect.metric, planned_dataset(claim_file, dataset))]
        if self.direction.how == "expr":
            return metric
        return planned_position_sink(claim_file, dataset, self.direction.hook,
                                     self.direction.position) + metric

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """The steering as the plan knows it before the direction is measured: by its
        text."""
        spec = planned_dataset(claim_file, dataset)
        return None if spec is None else (spec, by_text(
            "steer", self.hook, self.positions, self.scale, str(self.direction)))

    def planned_passes(self, claim_file: Any, dataset: str | None) -> list[PlannedPass]:
        """The metric's sinks on the steered pass (the claims steering alike, with other
        metrics, share it)."""
        planned = self.planned_interventions(claim_file, dataset)
        return [] if planned is None else on_pass(
            metric_sinks(claim_file, self.effect.metric, planned[0]), planned[1])

    def _positions(self, ctx: Context) -> tuple[int, ...] | None:
        if self.positions is None:
            return None
        spec = ctx.dataset_spec()
        return tuple(position_of(spec, label) for label in self.positions)

    def metric_value(self, ctx: Context, scale: float, direction: np.ndarray) -> Labelled:
        """The metric (with its per-sample values) with ``scale × direction`` added (scale 0:
        the unsteered pass)."""
        if scale == 0:
            return self.effect.metric.value(ctx)
        intervention = steering(self.hook, scale, direction, self._positions(ctx))
        if scale == self.scale:  # the claim's own pass (not the plot's sweep)
            announce_aliased(ctx, self, (intervention,))
        announce_metric(ctx, self.effect.metric, ctx.dataset_spec(), (intervention,))
        return self.effect.metric.value(ctx.derive(interventions=(intervention,)))

    def metric_at(self, ctx: Context, scale: float, direction: np.ndarray) -> float:
        """The metric with ``scale × direction`` added (scale 0: the unsteered pass)."""
        return self.metric_value(ctx, scale, direction).scalar()

    def evaluate(self, ctx: Context) -> Outcome:
        direction = self.direction.vector(ctx)
        first = self.metric_value(ctx, 0.0, direction)
        then = self.metric_value(ctx, self.scale, direction)
        before, after = first.scalar(), then.scalar()
        effect = effect_of(self.effect.change, before, after)
        bound, upper = evaluate_bounds(ctx, self.effect.comparison)
        passed = compare(effect, self.effect.comparison, bound, upper)
        change = self.effect.change[:-1]
        metric = str(self.effect.metric)
        norm = float(np.linalg.norm(direction))
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        measured = (f"{metric} {fmt(before)} → {fmt(after)} steering {self.hook} {where} by "
                    f"{fmt(self.scale)} × {self.direction} (norm {fmt(norm)}); {change} "
                    f"{fmt(effect)}")
        expected_bound = expected_text(self.effect.comparison, bound, upper)
        spec = ctx.dataset_spec()
        context = {"intervention": f"{self.hook} {where} + {fmt(self.scale)} × direction",
                   "direction": f"{self.direction} (norm {fmt(norm)})", "metric": metric,
                   "dataset": f"{load_dataset(spec).n} samples of {spec.describe()}"}
        needed = None
        if self.effect.comparison.op in (">=", ">", "<=", "<") and change in ("rise", "drop"):
            needed = before + bound if change == "rise" else before - bound
        rows = [{"scale": self.scale, "before": before, "after": after, change: effect,
                 "holds": passed}]
        plot_data = {"scale": self.scale, "before": before, "after": after, "metric": metric,
                     "change": change, "expected": expected_bound, "needed": needed}
        outcome = Outcome(passed, measured, f"{change} {expected_bound}", value=effect,
                          rows=rows, context=context, plot_data=plot_data)
        return with_confidence(outcome, self.effect.comparison,
                               paired_meta(change, first.meta, then.meta), bound, upper,
                               f"metric '{metric}'", row=rows[0])

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """The metric at multiples of the claimed scale (only when a plot is drawn)."""
        try:
            direction = self.direction.vector(ctx)
            scales = [factor * self.scale for factor in SWEEP]
            values = [self.metric_at(ctx, scale, direction) for scale in scales]
        except Exception as exc:
            outcome.plot_data["sweep"] = exc
            return
        outcome.plot_data["sweep"] = {"scales": scales, "metric": values}

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.probe_plot import plot_scales

        plot_scales(ax, outcome, f"{self.effect.metric} against the scale of the direction "
                                 f"added at {self.hook}")
