"""What a path patching claim plans (:mod:`interp_assert.claims.path_patch`): the receiver
inputs that pass 2 captures and the metric that pass 3 reads, on the passes keyed by their
stand-ins, and, for ``logits`` and ``resid_final``, the target's activations of every layer
that pass 2 freezes (guessed per layer before the model is loaded)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from interp_assert.claims.planned_passes import PlannedPass, metric_sinks, on_pass
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.interventions import Component, component, reference_sinks
from interp_assert.evaluate.path_patching import (
    END,
    FINAL,
    Receiver,
    check_path,
    last_layer,
)
from interp_assert.evaluate.planned_passes import (
    guessed_layers,
    guessed_sinks,
    path_stand_ins,
    sender_stand_ins,
)


def path_guesses(senders: Sequence[Component], receivers: Sequence[Receiver], template: str
                 ) -> list[tuple[Hashable, Callable[[], Any]]]:
    """The target's activations that pass 2 freezes to the end of the model: every layer's
    ``hook_z`` after the first sender's and, for ``resid_final``, every MLP's output from the
    first sender's layer on (the senders' own excepted)."""
    first = min(s.layer or 0 for s in senders)
    layers = guessed_layers(template, first + 1)
    if any(r.label == FINAL for r in receivers):
        sending = {s.hook for s in senders}
        mlps = guessed_layers(f"{template.rsplit('.', 2)[0]}.hook_mlp_out", first)
        layers += [mlp for mlp in mlps if mlp.hook not in sending]
    return guessed_sinks(layers)


def path_passes(claim: Any, claim_file: Any) -> list[PlannedPass]:
    """Pass 2's receiver inputs and pass 3's metric of a path patching claim that patches
    every position and whose receivers are heads or MLP inputs (with ``logits`` and
    ``resid_final`` pass 2's frozen layers depend on the model's depth)."""
    source, target = claim_file.datasets.get(claim.source), claim_file.datasets.get(
        claim.target)
    receivers = claim.receivers
    if (claim.effect is None or claim.positions is not None or source is None or target is None
            or not receivers or any(r.label in (END, FINAL) for r in receivers)):
        return []
    layout = Layout.parse(claim_file.raw.get("layout"))
    template = layout.hook("hook_z")
    senders = [component(label, layout) for label in claim.parts]
    if not senders:
        return []
    check_path(senders, receivers)  # an error here is the claim's, when it runs
    second = sender_stand_ins(senders, source, target, last_layer(receivers, 0), template)
    inputs = [part for receiver in receivers for part in receiver.parts(template)]
    captured = on_pass([(target, key, factory) for key, factory in reference_sinks(inputs)],
                       second)
    third = path_stand_ins(senders, inputs, source, target)
    return captured + on_pass(metric_sinks(claim_file, claim.effect.metric, target), third)
