"""Linear probes: what a linear read-out of one activation at one position recovers.

* ``probe blocks.0.hook_resid_post at A4 for carry[5]: accuracy ≥ 95%``
* ``probe blocks.0.hook_resid_post at A4 for carry[5]: selectivity ≥ 30 points``
* ``probe blocks.1.hook_resid_post at = for sum_digit (seed 3): R² ≥ 0.5``

The label is a dataset field (or a quantity) with one value per sample; ``NAME[i]`` picks
column i of a ``[sample, k]`` field, and a ``[sample, position]`` field without a column is read
at the probe's position. ``accuracy`` and ``selectivity`` fit a logistic classifier,
``R²`` a ridge regression; both on a seeded 80/20 split (see
:mod:`interp_assert.evaluate.probing` and docs/definitions.md "Linear probes").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from lark import Tree

from interp_assert.claims.base import Claim, Context, planned_dataset, register_claim
from interp_assert.claims.compare import evaluate_bounds, judged_value
from interp_assert.claims.interval_pvalues import probe_interval
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.probing import (
    PositionSink,
    ProbeFit,
    activation_at,
    field_labels,
    fit_classifier,
    fit_regressor,
    position_of,
    sink_key,
)
from interp_assert.language import ast
from interp_assert.loading.data import load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PROBE_GRAMMAR = r"""
probe: "probe" NAME "at" label "for" probe_target [probe_seed] ":" PROBE_STAT comparison
probe_target: NAME ["[" (INT | NAME) "]"]
probe_seed: "(" "seed" INT ")"
PROBE_STAT: /(accuracy|selectivity|r2|R2)\b|R²/"""
STATS = {"accuracy": "accuracy", "selectivity": "selectivity", "r2": "R²", "R2": "R²",
         "R²": "R²"}


@dataclass(frozen=True)
class Target:
    """A probe's label: a field or quantity name, optionally one column of it."""

    name: str
    column: int | str | None = None  # a str only in a template (``carry[{i+1}]``)

    def __str__(self) -> str:
        return self.name if self.column is None else f"{self.name}[{self.column}]"


def target_from(tree: Tree) -> Target:
    name, column = tree.children
    if column is None:
        return Target(str(name))
    return Target(str(name), int(column) if str(column).isdigit() else str(column))


def seed_from(tree: Tree | None) -> int | None:
    return None if tree is None else int(tree.children[0])


def probe_labels(ctx: Context, target: Target, label: str) -> np.ndarray:
    """The per-sample labels of ``target`` on the claim's dataset (a field, else a quantity)."""
    spec = ctx.dataset_spec()
    dataset = load_dataset(spec)
    if target.name not in dataset.fields and target.name in ctx.definitions:
        values: Any = ctx.quantity(target.name).values
    else:
        values = dataset.field(target.name)  # no such field: the error names the fields
    seq = len(spec.positions) if spec.positions is not None else None
    column = target.column
    if isinstance(column, str) and column.isdigit():  # a template's instance: carry[{i+1}]
        column = int(column)
    if isinstance(column, str):
        raise QuantityError(f"'{target}': the column must be a whole number",
                            hint=f"write e.g. '{target.name}[0]' (or a template placeholder "
                                 "'{i}' with 'for i in ...')")
    return field_labels(values, str(target), column, position_of(spec, label),
                        dataset.n, seq)


def planned_position_sink(claim_file: Any, dataset: str | None, hook: str, label: str
                          ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
    """The activation at (hook, position) on the claim's dataset, planned so that the clean
    pass the claim's other quantities need captures it too."""
    spec = planned_dataset(claim_file, dataset)
    if spec is None:
        return []
    try:
        position = position_of(spec, label)
    except Exception:  # the claim reports it when it runs
        return []
    return [(dataset, sink_key(hook, position), lambda: PositionSink(hook, position))]


@register_claim
@dataclass
class Probe(Claim):
    """``probe HOOK at POSITION for LABEL: accuracy|selectivity|R² COMPARISON``."""

    kind = "probe"
    grammar = PROBE_GRAMMAR

    hook: str
    position: str
    target: Target
    stat: str
    comparison: ast.Comparison
    seed: int | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Probe:
        hook, position, target, seed, stat, comparison = children
        return cls(str(hook), ast.label_text(position), target_from(target), STATS[str(stat)],
                   comparison, seed_from(seed))

    def __str__(self) -> str:
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return (f"probe {self.hook} at {ast.quote_if_needed(self.position)} for {self.target}"
                f"{seed}: "
                f"{self.stat} {self.comparison}")

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        return planned_position_sink(claim_file, dataset, self.hook, self.position)

    def fit(self, ctx: Context) -> ProbeFit:
        """The probe fitted on the claim's dataset."""
        x = activation_at(ctx, ctx.dataset_spec(), self.hook, self.position)
        labels = probe_labels(ctx, self.target, self.position)
        if self.stat == "R²":
            return fit_regressor(x, labels, self.seed or 0, str(self.target))
        return fit_classifier(x, labels, self.seed or 0, str(self.target))

    def evaluate(self, ctx: Context) -> Outcome:
        fit = self.fit(ctx)
        bound, upper = evaluate_bounds(ctx, self.comparison)
        value = fit.selectivity if self.stat == "selectivity" else fit.test
        interval, p_value = probe_interval(fit, self.stat, self.comparison, bound, upper)
        judged = judged_value(value, interval, self.comparison)
        passed = all(compare(v, self.comparison, bound, upper) for v in
                     (judged if isinstance(judged, tuple) else (judged,)))
        score = "R²" if fit.task == "regression" else "accuracy"
        method = "bootstrap" if self.stat != "accuracy" else "Wilson"
        level = self.comparison.confidence or 0.95
        measured = (f"held-out {score} {fmt(fit.test)} on {fit.n_test} samples (train "
                    f"{fmt(fit.train)} on {fit.n_train}); control task {fmt(fit.control_test)}")
        if fit.task == "classification":
            measured += (f"; selectivity {fmt(100 * fit.selectivity)} points; majority class "
                         f"{fmt(fit.majority)}")
        measured += (f"; {self.stat} {level:.0%} {method} CI [{fmt(interval[0])}, "
                     f"{fmt(interval[1])}]")
        expected = f"{self.stat} {expected_text(self.comparison, bound, upper)}"
        if self.comparison.confidence is not None:
            expected += f" for the whole {self.comparison.confidence:.0%} interval"
        rows = [{"split": "train", score: fit.train, "control": fit.control_train,
                 "samples": fit.n_train},
                {"split": "held-out", score: fit.test, "control": fit.control_test,
                 "samples": fit.n_test}]
        spec = ctx.dataset_spec()
        context = {"probe": f"{self.hook} at {self.position}", "label": str(self.target),
                   "dataset": f"{load_dataset(spec).n} samples of {spec.describe()}",
                   "split": f"seed {self.seed or 0}: {fit.n_train} train, {fit.n_test} held out"}
        if fit.classes:
            context["classes"] = ", ".join(str(c) for c in fit.classes)
        plot_data = {"task": fit.task, "train": fit.train, "test": fit.test,
                     "interval": list(interval) if self.stat != "selectivity" else
                     list(fit.interval), "control_train": fit.control_train,
                     "control_test": fit.control_test, "majority": fit.majority,
                     "stat": self.stat, "bound": bound, "upper": upper, "op": self.comparison.op,
                     "confusion": fit.confusion, "classes": fit.classes}
        return Outcome(passed, measured, expected, value=value, rows=rows, context=context,
                       plot_data=plot_data, interval=interval, p_value=p_value)

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.probe_plot import plot_probe

        plot_probe(ax, outcome, f"probe {self.hook} at {self.position} for {self.target}")
