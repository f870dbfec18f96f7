"""Intervened passes planned before any pass runs, and sinks the plan guesses per layer.

A causal claim's intervened pass is keyed by its interventions. What they replace (which
component, from which dataset) is known from the claim's text; what they write (a mean, a
patched activation) only once data has been read. So the plan keys such a pass by *stand-ins*:
interventions with the same hook and key, which compare equal to the real ones (and are never
applied). The first claim that runs the pass then feeds every sink any claim of the run reads
on it. A pass whose key itself depends on data (steering: the direction's digest) is planned
under a stand-in key and aliased to the real one by the claim that builds it (:func:`alias`).

A pass that reads every layer (the frozen layers of path patching to the logits, the source
activations of a gradient pass) is planned for up to :data:`PLAN_LAYERS` blocks before the
model is loaded; the pass skips, quietly, the guessed hooks the model does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from interp_assert.evaluate.forward import Intervention, announce
from interp_assert.evaluate.interventions import (
    Component,
    ablation_key,
    patching_key,
    reference_sinks,
)
from interp_assert.evaluate.logit_attribution import PLAN_LAYERS
from interp_assert.evaluate.path_patching import (
    freeze_key,
    frozen_layers,
    kept_heads,
    path_key,
)
from interp_assert.loading.data import DatasetSpec

#: a planned sink: (dataset, sink key, sink factory)
PlannedSink = tuple[DatasetSpec, Hashable, Callable[[], Any]]


def _stand_in_applied(output: Any, batch: dict[str, Any]) -> Any:
    raise AssertionError("a planned stand-in intervention was applied")  # never: only a key


def stand_in(hook: str, key: Hashable) -> Intervention:
    """An intervention equal to the real one of this hook and key, for the plan's keys."""
    return Intervention(hook, key, _stand_in_applied)


def ablation_stand_ins(parts: Sequence[Component], how: str, reference: DatasetSpec,
                       seed: int) -> tuple[Intervention, ...]:
    """Stand-ins of :func:`~interp_assert.evaluate.interventions.ablation` at every position."""
    return tuple(stand_in(p.hook, ablation_key(p, how, None, reference, seed)) for p in parts)


def patching_stand_ins(parts: Sequence[Component], source: DatasetSpec
                       ) -> tuple[Intervention, ...]:
    """Stand-ins of :func:`~interp_assert.evaluate.interventions.patching` at every
    position."""
    return tuple(stand_in(p.hook, patching_key(p, None, source)) for p in parts)


def sender_stand_ins(senders: Sequence[Component], source: DatasetSpec, target: DatasetSpec,
                     stop: int, template: str) -> tuple[Intervention, ...]:
    """Stand-ins of path patching's pass 2
    (:func:`~interp_assert.evaluate.path_patching.sender_pass`) at every position."""
    frozen = tuple(stand_in(layer.hook, freeze_key(layer, kept_heads(senders, layer), target))
                   for layer in frozen_layers(senders, stop, template))
    return (*patching_stand_ins(senders, source), *frozen)


def path_stand_ins(senders: Sequence[Component], inputs: Sequence[Component],
                   source: DatasetSpec, target: DatasetSpec) -> tuple[Intervention, ...]:
    """Stand-ins of path patching's pass 3 (receiver inputs patched) at every position."""
    return tuple(stand_in(part.hook, path_key(senders, part, None, source, target))
                 for part in inputs)


def optional(make: Callable[[], Any]) -> Callable[[], Any]:
    """A factory of sinks the pass skips quietly where the model lacks their hook."""

    def made() -> Any:
        sink = make()
        sink.optional = True
        return sink

    made.optional = True  # type: ignore[attr-defined]  (a planned guess: any real one wins)
    return made


def guessed_layers(template: str, first: int) -> list[Component]:
    """The whole hook ``template`` (``blocks.{l}.attn.hook_z``) of every layer from ``first``
    up to :data:`PLAN_LAYERS`, as path patching and gradients read them."""
    hooks = [template.replace("{l}", str(layer)) for layer in range(first, PLAN_LAYERS)]
    return [Component(hook, hook, "module", layer) for layer, hook in enumerate(hooks, first)]


def guessed_sinks(parts: Sequence[Component]) -> list[tuple[Hashable, Callable[[], Any]]]:
    """(key, optional factory) of each guessed layer's activation."""
    return [(key, optional(make)) for key, make in reference_sinks(parts)]


def announce_sinks(plan: Any, subject: Any, sinks: Iterable[PlannedSink],
                   interventions: tuple[Intervention, ...]) -> None:
    """Announce ``sinks`` on their datasets' passes with ``interventions``, so that the first
    request runs one pass for all of them (a metric reading several quantities)."""
    for dataset, key, factory in sinks:
        announce(plan, subject, dataset, key, factory, interventions)


def alias(plan: Any, subject: Any, dataset: DatasetSpec, planned: tuple[Intervention, ...],
          real: tuple[Intervention, ...]) -> None:
    """Serve what the plan holds for the pass keyed by stand-ins ``planned`` on the pass with
    the real interventions ``real``."""
    if plan is not None and hasattr(plan, "alias"):
        plan.alias((subject.spec, dataset, planned), (subject.spec, dataset, real))


__all__ = [
    "PLAN_LAYERS",
    "ablation_stand_ins",
    "alias",
    "announce_sinks",
    "guessed_layers",
    "guessed_sinks",
    "optional",
    "patching_stand_ins",
    "path_stand_ins",
    "sender_stand_ins",
    "stand_in",
]
