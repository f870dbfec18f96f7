"""Attribution patching claims: gradient estimates of patching effects
(:mod:`interp_assert.evaluate.gradients`).

* ``attribution of L1H2 from clean into corrupted: loss-repeated recovers ≥ 50%`` (the causal
  claims' effects and controls, with the estimate standing for the patched run: *after* =
  before + Σ of the named components' estimates)
* ``attribution from clean into corrupted on loss-repeated agrees with patching for the top 3
  heads``: the 3 heads of largest |estimate| are the 3 of largest |real patching change|
* ``attribution from clean into corrupted on loss-repeated agrees with patching over heads with
  spearman ≥ 0.8``: Spearman's rank correlation of the estimates with the real changes

Real changes patch each head (neuron) alone from the source into the target, one pass each.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.causal import Patch
from interp_assert.claims.causal_base import MeasuredMetric, Measurement
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.confidence import paired_meta
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.claims.planned_passes import announce_metric, gradient_sinks, metric_sinks
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.gradients import Attribution, attribution
from interp_assert.evaluate.interventions import (
    Component,
    activations,
    component,
    component_pool,
    effect_of,
    patching,
)
from interp_assert.language import ast
from interp_assert.loading.data import load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_UNITS = 256  # real patching of every unit: one pass each


def metric_config(ctx: Context, metric: MeasuredMetric) -> dict[str, Any]:
    """The ``metric:`` config a measured metric stands for (with its ``on ... tokens`` mask)."""
    from interp_assert.evaluate.quantities.behaviour import MetricQuantity

    expr = metric.expr
    name = expr.name if isinstance(expr, ast.Ref) else None
    definition = ctx.definitions.get(name) if name else None
    if definition is not None and isinstance(definition.kind, MetricQuantity):
        config = dict(definition.kind.config)
    elif definition is None and name == "loss":
        config = {"metric": "loss"}
    else:
        raise QuantityError(f"attribution patching differentiates a metric quantity, not "
                            f"'{expr}'", hint="name a 'metric: loss', 'logit_diff' or "
                                              "'answer_prob' quantity")
    if metric.mask is not None:
        config.pop("answer", None)
        config["mask"] = f"not {metric.mask}" if metric.negate else metric.mask
    return config


def estimates(ctx: Context, metric: MeasuredMetric, source: str, target: str,
              parts: list[Component], kinds: set[str]) -> tuple[Attribution, str]:
    """The attribution table covering ``parts`` and every unit of ``kinds`` (one gradient
    pass, shared by every claim on the same metric and datasets)."""
    layout = Layout.parse(ctx.layout)
    hooks = {(p.hook, p.kind) for p in parts if p.kind == "module"}
    for kind in sorted(kinds | {p.kind for p in parts} - {"module"}):
        hooks |= {(c.hook, c.kind) for c in (component(label, layout)
                                              for label in component_pool(ctx, kind))}
    what = f"attribution on '{metric}'"
    table = attribution(ctx, metric_config(ctx, metric), ctx.dataset_spec(source),
                        ctx.dataset_spec(target), sorted(hooks), what)
    return table, what


def estimated_meta(change: str, table: Attribution, parts: list[Component],
                   positions: tuple[int, ...] | None, before: Mapping[str, Any],
                   source: Mapping[str, Any]) -> dict[str, Any]:
    """The ``paired`` meta of an attribution estimate: each target sample's metric before,
    and that value plus the sample's own estimated change (its share of the gradient sum)
    standing for the patched run; empty without per-sample values (then a confidence claim
    is an error)."""
    if "samples" not in before:
        return {}
    shares = [table.sample_estimates(part, positions) for part in parts]
    first = np.asarray(before["samples"], dtype=np.float64).reshape(-1)
    if any(share is None or share.size != first.size for share in shares):
        return {}
    after = first + np.sum(shares, axis=0)
    meta = paired_meta(change, before, {"samples": after}, source)
    if meta:
        meta["pairing"] = meta["pairing"].replace(
            "before and after the intervention", "before and estimated after patching (its "
            "metric plus its own first-order estimate)")
    return meta


@register_claim
@dataclass
class AttributionOf(Patch):
    """``attribution of L1H2 from clean into corrupted: loss recovers ≥ 50%``."""

    kind = "attribution_of"
    grammar = r"""
attribution_of: "attribution" "of" causal_parts [causal_at] _attr_from ":" _causal_tail
_attr_from: "from" NAME "into" NAME"""

    def __str__(self) -> str:
        return "attribution of" + super().__str__()[len("patch"):]

    def measure(self, ctx: Context, labels: tuple[str, ...], change: str) -> Measurement:
        """Before, the estimated after (before + Σ estimates) and the effect."""
        assert self.effect is not None
        self._check_metric(ctx)
        target, source = self.datasets(ctx)
        assert source is not None
        positions = self._position_indices(target)
        parts = self._components(ctx, labels)
        kinds = {p.kind for p in self._components(ctx, self.parts)} - {"module"} \
            if self.control is not None else set()
        table, _ = estimates(ctx, self.effect.metric, self.source, self.target, parts, kinds)
        estimate = sum(table.estimate(part, positions) for part in parts)
        first, origin = self._metric(ctx, target), self._metric(ctx, source)
        before, source_value = first.scalar(), origin.scalar()
        after = before + estimate
        return Measurement(before, after, effect_of(change, before, after, source_value),
                           source_value, estimated_meta(change, table, parts, positions,
                                                        first.meta, origin.meta))

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """The metric on the source and the target, and the source activations the gradient
        pass reads."""
        return super().planned_sinks(claim_file, dataset)[len(self.parts):] + [
            (self.source, key, factory) for key, factory in gradient_sinks(
                claim_file, self.parts, set())]

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> None:
        """None: the patched pass is estimated, not run."""
        return None

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        return (f"{', '.join(self.parts)} patched {where} from {self.source} into "
                f"{self.target}, estimated by attribution patching (gradient at {self.target})")


@register_claim
@dataclass
class AttributionAgrees(Claim):
    """``attribution from clean into corrupted on loss agrees with patching for the top 3
    heads`` / ``... over heads with spearman ≥ 0.8``."""

    kind = "attribution_agrees"
    grammar = r"""
attribution_agrees: "attribution" _attr_from "on" causal_metric _attr_agrees (attr_top | attr_rank)
_attr_agrees: "agrees" "with" "patching"
attr_top: "for" "the" "top" INT ATTR_UNITS
attr_rank: "over" ATTR_UNITS "with" "spearman" comparison
ATTR_UNITS: /(heads|neurons)\b/"""

    source: str = ""
    target: str = ""
    metric: MeasuredMetric | None = None
    units: str = "heads"
    top: int | None = None
    comparison: ast.Comparison | None = None

    @classmethod
    def build(cls, children: list[Any]) -> AttributionAgrees:
        source, target, metric_tree, agreement = children
        expr, negate, mask = metric_tree.children
        metric = MeasuredMetric(expr, str(mask) if mask is not None else None,
                                negate is not None)
        if agreement.data == "attr_top":
            count, units = agreement.children
            if int(count) < 1:
                raise QuantityError("'top N' needs N ≥ 1")
            return cls(source=str(source), target=str(target), metric=metric, units=str(units),
                       top=int(count))
        units, comparison = agreement.children
        return cls(source=str(source), target=str(target), metric=metric, units=str(units),
                   comparison=comparison)

    def __str__(self) -> str:
        tail = (f"for the top {self.top} {self.units}" if self.top is not None
                else f"over {self.units} with spearman {self.comparison}")
        return (f"attribution from {self.source} into {self.target} on {self.metric} agrees "
                f"with patching {tail}")

    def expressions(self) -> Any:
        assert self.metric is not None
        yield self.metric.expr
        if self.comparison is not None:
            yield self.comparison.value
            if self.comparison.upper is not None:
                yield self.comparison.upper

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        return set(ast.referenced_names(self.metric.expr)) if self.metric else set()

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """The metric on the source and the target, and the source activations the gradient
        pass reads."""
        sinks = [(spec.name, key, factory) for data in (self.source, self.target)
                 for spec, key, factory in metric_sinks(claim_file, self.metric,
                                                        claim_file.datasets.get(data))]
        return sinks + [(self.source, key, factory) for key, factory in gradient_sinks(
            claim_file, (), {self.units[:-1]})]

    def evaluate(self, ctx: Context) -> Outcome:
        assert self.metric is not None
        kind = self.units[:-1]  # head, neuron
        layout = Layout.parse(ctx.layout)
        pool = [component(label, layout) for label in component_pool(ctx, kind)]
        if len(pool) > MAX_UNITS:
            raise QuantityError(f"real patching of {len(pool)} {self.units} takes a pass each "
                                f"(at most {MAX_UNITS})", hint="compare heads, or state "
                                "'attribution of ...' claims for chosen units")
        source, target = ctx.dataset_spec(self.source), ctx.dataset_spec(self.target)
        n_source, n_target = load_dataset(source).n, load_dataset(target).n
        if n_source != n_target:
            raise QuantityError(f"patching needs paired datasets: '{source.name}' has "
                                f"{n_source} samples, '{target.name}' {n_target}")
        table, _ = estimates(ctx, self.metric, self.source, self.target, pool, {kind})
        activations(ctx, source, pool)  # every unit's source slice in one pass
        before = self.metric.value(ctx.derive(dataset=target.name)).scalar()
        estimate = np.array([table.estimate(part) for part in pool])
        real = np.array([self._patched(ctx, part, source, target) - before for part in pool])
        from scipy.stats import pearsonr, spearmanr

        labels = [part.label for part in pool]
        k = self.top if self.top is not None else 0
        if k > len(pool):
            raise QuantityError(f"top {k} of {len(pool)} {self.units}")
        by_estimate = set(_top(estimate, k, labels))
        by_real = set(_top(real, k, labels))
        finite = np.isfinite(estimate) & np.isfinite(real)
        rho = float(spearmanr(estimate, real).statistic) if finite.all() else float("nan")
        r = float(pearsonr(estimate, real).statistic) if finite.all() else float("nan")
        if self.top is not None:
            passed = bool(finite.all()) and by_estimate == by_real
            expected = f"the top {k} {self.units} by |estimate| and by |patching change| coincide"
            measured = (f"top {k} by |estimate|: {', '.join(_top(estimate, k, labels))}; by "
                        f"|patching change|: {', '.join(_top(real, k, labels))}")
            value = float(len(by_estimate & by_real))
        else:
            assert self.comparison is not None
            bound, upper = evaluate_bounds(ctx, self.comparison)
            passed = compare(rho, self.comparison, bound, upper)
            expected = f"spearman {expected_text(self.comparison, bound, upper)}"
            measured = f"spearman {fmt(rho)} over {len(pool)} {self.units}"
            value = rho
        measured += f" (spearman {fmt(rho)}, pearson {fmt(r)}; {self.metric} {fmt(before)} on " \
                    f"{target.name})"
        rows = [{"unit": label, "estimate": float(e), "patching": float(p),
                 "top_both": label in by_estimate and label in by_real,
                 "top_either": label in by_estimate or label in by_real}
                for label, e, p in zip(labels, estimate, real)]
        context = {"metric": str(self.metric), "source": f"{n_source} samples of "
                   f"{source.describe()}", "dataset": f"{n_target} samples of "
                   f"{target.describe()}", "gradient metric at target": fmt(table.metric)}
        return Outcome(passed, measured, expected, value=value, rows=rows, context=context,
                       plot_data={"spearman": rho, "pearson": r})

    def _patched(self, ctx: Context, part: Component, source: Any, target: Any) -> float:
        """The metric on ``target`` with ``part`` alone patched from ``source``."""
        interventions = patching(ctx, [part], source, target, None)
        announce_metric(ctx, self.metric, target, interventions)
        derived = ctx.derive(dataset=target.name, interventions=interventions)
        return self.metric.value(derived).scalar()  # type: ignore[union-attr]

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.patching_plots import plot_attribution_scatter

        plot_attribution_scatter(ax, outcome, str(self.metric))


def _top(values: np.ndarray, k: int, labels: list[str]) -> list[str]:
    """The ``k`` labels of largest |value| (ties: the earlier label first)."""
    order = sorted(range(len(labels)), key=lambda i: (-abs(values[i]), i))
    return [labels[i] for i in order[:k]]

