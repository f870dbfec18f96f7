"""What the causal claim kinds (``ablate``, ``patch``; see :mod:`interp_assert.claims.causal`)
share: their metric, effect and control clauses, and the measurement, verdict and plot of an
intervention on a set of components."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from lark import Tree

from interp_assert.claims.base import Claim, Context
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.confidence import paired_meta, with_confidence
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.claims.planned_passes import (
    Planned,
    PlannedPass,
    announce_aliased,
    announce_metric,
    metric_sinks,
    on_pass,
)
from interp_assert.claims.random_rank import (
    apply_rank,
    check_requested,
    control_level,
    control_rank,
)
from interp_assert.claims.sequential_pairs import paired_stop, same_samples, same_source
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.evaluate.circuit_layout import Layout, parse_head
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.interventions import (
    Component,
    component,
    component_pool,
    effect_of,
    head_grid,
    random_sets,
)
from interp_assert.labels import Labelled, expand_labels
from interp_assert.language import ast
from interp_assert.language.ast import referenced_names
from interp_assert.loading.data import DatasetSpec, load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SHARED_GRAMMAR = r"""
_causal_tail: causal_effect [causal_control]
causal_parts: label ("," label)*
causal_at: "at" member ("," member)*
causal_effect: causal_metric CAUSAL_CHANGE "by" comparison
    | causal_metric CAUSAL_RECOVERS comparison
causal_metric: expr ["on" [CAUSAL_NOT] NAME "tokens"]
causal_control: "while" [INT] "random" "sets" _causal_same CAUSAL_VERB ["by"] comparison
_causal_same: "of" "the" "same" "size"
CAUSAL_CHANGE: /(drops|rises|changes)\b/
CAUSAL_RECOVERS: /recovers\b/
CAUSAL_NOT: /not\b/
CAUSAL_VERB: /(drop|rise|change|recover)s?\b/"""
DEFAULT_DRAWS = 5
MAX_SWEEP = 64  # the plot of a head claim sweeps every head when the model has at most this many


@dataclass(frozen=True)
class MeasuredMetric:
    """The measured expression, optionally restricted to tokens where a field is (not) true."""

    expr: ast.Node
    mask: str | None = None
    negate: bool = False

    def __str__(self) -> str:
        if self.mask is None:
            return str(self.expr)
        return f"{self.expr} on {'not ' if self.negate else ''}{self.mask} tokens"

    def value(self, ctx: Context) -> Labelled:
        """The metric read through ``ctx`` (its dataset and interventions)."""
        if self.mask is None:
            return ctx.value(self.expr)
        return self.masked(ctx.definitions).compute(ctx)

    def masked(self, definitions: Mapping[str, Any]) -> Any:
        """The metric quantity ``METRIC on [not] FIELD tokens`` stands for."""
        from interp_assert.evaluate.quantities.behaviour import MetricQuantity

        if not isinstance(self.expr, ast.Ref):
            raise QuantityError(f"'{self}': 'on ... tokens' needs a metric name, not an "
                                "expression", hint="write 'loss on repeated tokens'")
        name = self.expr.name
        definition = definitions.get(name)
        if definition is not None and isinstance(definition.kind, MetricQuantity):
            config = {k: v for k, v in definition.kind.config.items() if k != "answer"}
        elif definition is None and name == "loss":
            config = {"metric": "loss"}
        else:
            raise QuantityError(f"'{name}' is not a metric quantity; 'on ... tokens' restricts "
                                "a loss metric to the tokens where a dataset field is true",
                                hint="define e.g. 'loss: {metric: loss, answer: ...}'")
        config["mask"] = f"not {self.mask}" if self.negate else self.mask
        return MetricQuantity(str(self), config, None)


@dataclass(frozen=True)
class Effect:
    """``METRIC drops by ≥ 30 points`` / ``rises by`` / ``changes by`` / ``recovers ≥ 80%``."""

    metric: MeasuredMetric
    change: str  # drops, rises, changes, recovers
    comparison: ast.Comparison

    def __str__(self) -> str:
        verb = "recovers" if self.change == "recovers" else f"{self.change} by"
        return f"{self.metric} {verb} {self.comparison}"


@dataclass(frozen=True)
class Control:
    """``while [N] random sets of the same size drop ≤ 5 points``."""

    change: str  # drop, rise, change, recover
    comparison: ast.Comparison
    draws: int | None = None

    def __str__(self) -> str:
        count = f"{self.draws} " if self.draws is not None else ""
        verb = {"drop": "drop by", "rise": "rise by", "change": "change by"}.get(self.change,
                                                                               self.change)
        return f"while {count}random sets of the same size {verb} {self.comparison}"


def parts_of(tree: Tree) -> tuple[str, ...]:
    """The labels of a ``causal_parts`` tree."""
    return tuple(ast.label_text(item) for item in tree.children)


def positions_of(tree: Tree | None) -> tuple[str, ...] | None:
    """The labels of a ``causal_at`` tree (None without one)."""
    return None if tree is None else tuple(ast.label_text(item) for item in tree.children)


def effect_from(tree: Tree) -> Effect:
    """The :class:`Effect` of a ``causal_effect`` tree."""
    metric_tree, change, comparison = tree.children
    expr, negate, mask = metric_tree.children
    metric = MeasuredMetric(expr, str(mask) if mask is not None else None, negate is not None)
    return Effect(metric, str(change), comparison)


def control_from(tree: Tree | None) -> Control | None:
    """The :class:`Control` of a ``causal_control`` tree (None without one)."""
    if tree is None:
        return None
    draws, verb, comparison = tree.children
    word = str(verb).lower()
    word = word[:-1] if word.endswith("s") else word
    return Control(word, comparison, int(draws) if draws is not None else None)


@dataclass
class Measurement:
    """Metric values of one intervention."""

    before: float
    after: float
    effect: float
    source: float | None = None
    #: per-sample values before and after (``paired``), for intervals (claims/confidence.py)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CausalClaim(Claim):
    """Shared measurement of ablation and patching claims."""

    parts: tuple[str, ...] = ()
    effect: Effect | None = None
    positions: tuple[str, ...] | None = None
    control: Control | None = None
    seed: int | None = field(default=None)

    # -- pieces for subclasses -----------------------------------------------------------------
    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        """The interventions on ``parts`` (at ``positions``; None: everywhere)."""
        raise NotImplementedError

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        """The dataset the metric is measured on with the intervention, and the source
        dataset of patching (None for ablation)."""
        raise NotImplementedError

    def describe(self, ctx: Context) -> str:
        """The intervention in words, for the report."""
        raise NotImplementedError

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """The dataset and interventions of the claim's own measurement as the plan knows
        them before any pass (stand-ins, :mod:`interp_assert.claims.planned_passes`); None
        when they are not planned."""
        return None

    def planned_passes(self, claim_file: Any, dataset: str | None) -> list[PlannedPass]:
        """The metric's sinks on the claim's intervened pass, so that every claim reading
        that pass shares one run of it."""
        planned = self.planned_interventions(claim_file, dataset)
        if planned is None or self.effect is None:
            return []
        return on_pass(metric_sinks(claim_file, self.effect.metric, planned[0]), planned[1])

    # -- measurement --------------------------------------------------------------------------
    def expressions(self) -> Any:
        assert self.effect is not None
        yield self.effect.metric.expr
        for comparison in (self.effect.comparison,
                           self.control.comparison if self.control else None):
            if comparison is not None:
                yield comparison.value
                if comparison.upper is not None:
                    yield comparison.upper

    def _components(self, ctx: Context, labels: tuple[str, ...]) -> list[Component]:
        layout = Layout.parse(ctx.layout)
        return [component(label, layout) for label in labels]

    def _position_indices(self, dataset: DatasetSpec) -> tuple[int, ...] | None:
        if self.positions is None:
            return None
        loaded = load_dataset(dataset)
        labels = expand_labels(list(self.positions))
        return tuple(loaded.position_index(label) for label in labels)

    def _metric(self, ctx: Context, dataset: DatasetSpec,
                interventions: tuple[Intervention, ...] = ()) -> Labelled:
        assert self.effect is not None
        derived = ctx.derive(dataset=dataset.name, interventions=interventions)
        announce_metric(ctx, self.effect.metric, dataset, interventions)
        return self.effect.metric.value(derived)

    def measure(self, ctx: Context, labels: tuple[str, ...], change: str) -> Measurement:
        """Before, after and the effect of intervening on ``labels``."""
        target, source = self.datasets(ctx)
        positions = self._position_indices(target)
        interventions = self.intervene(ctx, self._components(ctx, labels), positions)
        first = self._metric(ctx, target)
        origin = self._metric(ctx, source) if source is not None else None
        main = (self.effect is not None and labels == self.parts
                and change == self.effect.change)  # not a random control
        if main:
            announce_aliased(ctx, self, interventions)
        with paired_stop(self.effect if main else None, ctx, target, interventions, first,
                         origin):
            then = self._metric(ctx, target, interventions)
        origin = same_source(origin, first, then)  # an intervened pass that stopped early
        first = same_samples(first, then)
        before, after = first.scalar(), then.scalar()
        source_value = origin.scalar() if origin is not None else None
        return Measurement(before, after, effect_of(change, before, after, source_value),
                           source_value, paired_meta(change, first.meta, then.meta,
                                                     origin.meta if origin else None))

    def evaluate(self, ctx: Context) -> Outcome:
        assert self.effect is not None
        main = self.measure(ctx, self.parts, self.effect.change)
        bound, upper = evaluate_bounds(ctx, self.effect.comparison)
        holds = compare(main.effect, self.effect.comparison, bound, upper)
        metric = str(self.effect.metric)
        what = self.describe(ctx)
        change = "recovery" if self.effect.change == "recovers" else self.effect.change[:-1]
        measured = (f"{metric} {fmt(main.before)} → {fmt(main.after)} with {what}; "
                    f"{change} {fmt(main.effect)}")
        if main.source is not None:
            measured += f" (source {fmt(main.source)})"
        expected = f"{change} {expected_text(self.effect.comparison, bound, upper)}"
        rows: list[dict[str, Any]] = [{"intervened": ", ".join(self.parts), "before": main.before,
                                       "after": main.after, "effect": main.effect,
                                       "holds": holds}]
        controls: list[float] = []
        passed, control_ok, rank = holds, True, None
        if self.control is not None:
            control_ok, controls, text = self._controls(ctx, rows)
            rank = control_rank(self.effect, self.control, main, rows[1:])
            passed = passed and control_ok
            measured += f"; {text}"
            c_bound, c_upper = evaluate_bounds(ctx, self.control.comparison)
            expected += (f", random sets {self.control.change} "
                         f"{expected_text(self.control.comparison, c_bound, c_upper)}")
        target, source = self.datasets(ctx)
        context = {"intervention": what, "metric": metric,
                   "dataset": f"{load_dataset(target).n} samples of {target.describe()}"}
        if source is not None:
            context["source"] = f"{load_dataset(source).n} samples of {source.describe()}"
        plot_data: dict[str, Any] = {"effect": main.effect, "controls": controls,
                                     "bound": bound, "upper": upper, "change": change}
        if self.control is not None:
            plot_data["control_bound"] = evaluate_bounds(ctx, self.control.comparison)
        outcome = Outcome(passed, measured, expected, value=main.effect, rows=rows,
                          context=context, plot_data=plot_data)
        outcome = with_confidence(outcome, self.effect.comparison, main.meta, bound, upper,
                                  f"metric '{metric}'", also=control_ok, row=rows[0])
        return apply_rank(outcome, rank, control_level(self.control))

    def _controls(self, ctx: Context, rows: list[dict[str, Any]]
                  ) -> tuple[bool, list[float], str]:
        assert self.control is not None
        draws = self.control.draws or DEFAULT_DRAWS
        check_requested(self.control, DEFAULT_DRAWS)
        sets = random_sets(self.control_candidates(ctx), self.parts, len(self.parts), draws,
                           self.seed or 0)
        if not sets:
            raise QuantityError(f"no other {self.control_noun} to draw random controls from")
        bound, upper = evaluate_bounds(ctx, self.control.comparison)
        effects = []
        ok = True
        for labels in sets:
            result = self.measure(ctx, labels, self.control.change)
            holds = compare(result.effect, self.control.comparison, bound, upper)
            ok = ok and holds
            effects.append(result.effect)
            rows.append({"intervened": ", ".join(labels) + " (control)", "before": result.before,
                         "after": result.after, "effect": result.effect, "holds": holds})
        values = np.asarray(effects)
        noun = f" {self.control_noun}" if self.control_noun != "components" else ""
        text = (f"{len(sets)} random sets of {len(self.parts)}{noun}: {self.control.change} "
                f"mean {fmt(float(values.mean()))}, sd {fmt(float(values.std()))}, range "
                f"[{fmt(float(values.min()))}, {fmt(float(values.max()))}]")
        return ok, effects, text

    #: what random controls are drawn from, for messages
    control_noun = "components"

    def control_candidates(self, ctx: Context) -> list[str]:
        """Every label random control sets may be drawn from: the components of the claimed
        ones' kind (all heads or all neurons), from :meth:`control_pool`."""
        kinds = {component(label).kind for label in self.parts}
        if len(kinds) != 1 or kinds == {"module"}:
            raise QuantityError("random controls need the claimed components to be all heads "
                                "or all neurons")
        return self.control_pool(ctx, kinds.pop())

    def control_pool(self, ctx: Context, kind: str) -> list[str]:
        """The components random control sets are drawn from (every head or neuron)."""
        return component_pool(ctx, kind)

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        """The metric's quantities: its clean pass is planned like any other."""
        return set(referenced_names(self.effect.metric.expr)) if self.effect else set()

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """For a head claim, the effect of each head alone (only when a plot is drawn)."""
        if self.control is None and all(parse_head(label) for label in self.parts) and \
                self._sweepable(ctx):
            outcome.plot_data["sweep"] = self._sweep(ctx)

    def _sweepable(self, ctx: Context) -> bool:
        try:
            return len(component_pool(ctx, "head")) <= MAX_SWEEP
        except InterpAssertError:
            return False

    def _sweep(self, ctx: Context) -> dict[str, Any] | Exception:
        """The effect of intervening on each head alone, for the plot: a [layer, head] grid
        with its labels, or the error that stopped it (the plot reports it, as before the
        sweep moved out of ``plot``; the verdict stands)."""
        assert self.effect is not None
        change = self.effect.change
        try:
            grid, rows, cols = head_grid(component_pool(ctx, "head"),
                                         lambda label: self.measure(ctx, (label,), change).effect)
        except Exception as exc:
            return exc
        return {"grid": grid.tolist(), "rows": rows, "cols": cols}

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.causal_plot import plot_controls, plot_sweep

        data = outcome.plot_data
        if "sweep" in data:
            if isinstance(data["sweep"], Exception):
                raise data["sweep"]
            cells = [h for h in (parse_head(label) for label in self.parts) if h is not None]
            metric = self.effect.metric if self.effect else ""
            plot_sweep(ax, outcome, cells, f"{data['change']} of {metric} per head, each "
                                           "head alone")
            return
        plot_controls(ax, outcome, ", ".join(self.parts))
