"""What the causal claim kinds plan on their intervened passes: the forward sinks a metric
reads, on the pass keyed by the stand-ins of the claim's interventions
(:mod:`interp_assert.evaluate.planned_passes`), so that each (checkpoint, dataset,
interventions) pass runs once with every sink that any claim of the run reads on it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.planned_passes import (
    PlannedSink,
    alias,
    announce_sinks,
    stand_in,
)
from interp_assert.language.ast import referenced_names
from interp_assert.loading.data import DatasetSpec
from interp_assert.plan.plan import quantities_named

if TYPE_CHECKING:
    from interp_assert.claims.causal_base import MeasuredMetric

#: a planned sink of an intervened pass: (dataset, interventions, sink key, sink factory)
PlannedPass = tuple[DatasetSpec, tuple[Intervention, ...], Any, Any]
#: a claim's own intervened pass as the plan knows it: (dataset, stand-ins), or None
Planned = tuple[DatasetSpec, tuple[Intervention, ...]] | None


def by_text(*words: Any) -> tuple[Intervention, ...]:
    """A stand-in naming an intervention by the words of its claim (what it changes, where,
    from which dataset), for one whose key depends on data (positions, a direction): claims
    naming it alike share its planned sinks, and the first to build the real interventions
    aliases them (:func:`announce_aliased`)."""
    return (stand_in("", ("planned", *words)),)


def forward_sinks(claim_file: Any, names: Iterable[str], dataset: DatasetSpec
                  ) -> list[PlannedSink]:
    """The forward-pass sinks read in evaluating the names ``names`` (and, transitively, what
    their quantities are computed from) on ``dataset``; a quantity pinned to a dataset
    (``data:``) reads that one. Quantities with bad options are left out: their claims
    report them when they run."""
    found: list[PlannedSink] = []
    for name in sorted(quantities_named(claim_file, names)):
        kind = claim_file.quantities[name].kind
        need = getattr(kind, "need", None)
        if need is None:
            continue
        pinned = kind.config.get("data")
        spec = claim_file.datasets.get(str(pinned)) if pinned else dataset
        if spec is None:
            continue
        try:
            key, factory = need(spec, claim_file.search_path)
        except InterpAssertError:
            continue
        found.append((spec, key, factory))
    return found


def metric_sinks(claim_file: Any, metric: MeasuredMetric | None, dataset: DatasetSpec | None
                 ) -> list[PlannedSink]:
    """The sinks measuring ``metric`` on ``dataset`` reads (with ``on ... tokens``, its
    masked metric quantity's); none when it cannot be measured (the claim says why)."""
    if metric is None or dataset is None:
        return []
    if metric.mask is None:
        return forward_sinks(claim_file, referenced_names(metric.expr), dataset)
    try:
        quantity = metric.masked(claim_file.quantities)
        key, factory = quantity.need(dataset, claim_file.search_path)
    except InterpAssertError:
        return []
    return [(dataset, key, factory)]


def on_pass(sinks: Iterable[PlannedSink], interventions: tuple[Intervention, ...]
            ) -> list[PlannedPass]:
    """``sinks`` as planned sinks of the pass with ``interventions``."""
    return [(spec, interventions, key, factory) for spec, key, factory in sinks]


def announce_metric(ctx: Any, metric: MeasuredMetric | None, dataset: DatasetSpec,
                    interventions: tuple[Intervention, ...]) -> None:
    """Before reading ``metric`` on the pass with ``interventions``, announce every sink it
    reads there, so that one pass serves them all (controls, sweeps and positions that the
    plan could not foresee)."""
    claim_file = getattr(ctx, "file", None)
    if claim_file is None or getattr(ctx, "plan", None) is None or not interventions:
        return
    announce_sinks(ctx.plan, ctx.subject, metric_sinks(claim_file, metric, dataset),
                   interventions)


def gradient_sinks(claim_file: Any, labels: Iterable[str], kinds: Iterable[str]
                   ) -> list[tuple[Any, Any]]:
    """(key, factory) of the source activations a gradient pass reads
    (:func:`~interp_assert.evaluate.gradients.attribution`): each named module's output, and
    the whole ``hook_z`` (heads) or ``hook_post`` (neurons) of every layer, for every unit of
    ``kinds`` and of the named components' kinds (guessed per layer before the model is
    loaded)."""
    from interp_assert.evaluate.circuit_layout import Layout
    from interp_assert.evaluate.interventions import component, reference_sinks
    from interp_assert.evaluate.planned_passes import guessed_layers, guessed_sinks

    layout = Layout.parse(claim_file.raw.get("layout"))
    parts = [component(label, layout) for label in labels]
    modules = [part for part in parts if part.kind == "module"]
    every = sorted(set(kinds) | {part.kind for part in parts} - {"module"})
    guessed = [layer for kind in every for layer in guessed_layers(
        layout.hook("hook_z" if kind == "head" else "hook_post"), 0)]
    return reference_sinks(modules) + guessed_sinks(guessed)


def announce_aliased(ctx: Any, claim: Any, real: tuple[Intervention, ...]) -> None:
    """Before ``claim`` reads its own intervened pass, with the ``real`` interventions:
    serve there every sink the run planned on the stand-ins the plan knew it by (on any
    dataset of the file; nothing to do where the stand-ins equal the real ones)."""
    claim_file = getattr(ctx, "file", None)
    if claim_file is None or getattr(ctx, "plan", None) is None:
        return
    try:
        planned = claim.planned_interventions(claim_file, ctx.dataset)
    except InterpAssertError:  # the claim reports it
        return
    if planned is None or planned[1] == real:
        return
    for spec in claim_file.datasets.values():
        alias(ctx.plan, ctx.subject, spec, planned[1], real)
