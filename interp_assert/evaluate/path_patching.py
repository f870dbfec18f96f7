"""Path patching (Wang et al. 2022, the IOI paper; TransformerLens's path patching): the effect
of sender heads on receivers through the direct paths between them only.

Three kinds of forward pass, all planned passes of :mod:`interp_assert.evaluate.forward`:

1. the clean (source) run captures the senders' ``hook_z`` slices, and the corrupted (target)
   run every layer's whole ``hook_z`` after the first sender's layer;
2. the corrupted run with the senders patched to their clean values and every other head of the
   later layers frozen at its corrupted value captures each receiver's input: the head's slice
   of ``hook_q`` / ``hook_k`` / ``hook_v`` (MLPs are recomputed, as in the IOI paper);
3. the corrupted run with only those receiver inputs replaced by pass 2's values, where the
   metric is read. With the receiver ``logits`` pass 2 itself is the measured run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_weights import WeightContext
from interp_assert.evaluate.forward import Intervention, announce, request
from interp_assert.evaluate.interventions import (
    Component,
    Replacement,
    SliceSink,
    _sink_key,
    activations,
    patching,
)
from interp_assert.loading.data import DatasetSpec

#: receiver input words and the hook each one reads
INPUTS = {"queries": "hook_q", "keys": "hook_k", "values": "hook_v"}
END = "logits"


@dataclass(frozen=True)
class Receiver:
    """A receiving head's query, key or value input, or the end of the model (``logits``)."""

    label: str  # L1H2, or "logits"
    inputs: tuple[str, ...] = ()  # words of INPUTS; empty for logits

    def __str__(self) -> str:
        return self.label if self.label == END else f"{self.label} {' '.join(self.inputs)}"

    def parts(self, template: str) -> list[Component]:
        """The receiver's input slices; their hooks sit beside ``hook_z`` in ``template``
        (``blocks.{l}.attn.hook_z`` -> ``blocks.{l}.attn.hook_k``)."""
        from interp_assert.evaluate.circuit_layout import parse_head

        head = parse_head(self.label)
        if head is None:
            return []
        folder = template.replace("{l}", str(head[0])).rsplit(".", 1)[0]
        return [Component(f"{self.label} {word}", f"{folder}.{INPUTS[word]}", "head", head[0],
                          head[1]) for word in self.inputs]


def layer_template(part: Component) -> str:
    """A head's hook with its layer as ``{l}`` (``blocks.0.attn.hook_z`` -> ``blocks.{l}...``)."""
    return part.hook.replace(f".{part.layer}.", ".{l}.", 1)


def check_path(senders: Sequence[Component], receivers: Sequence[Receiver]) -> None:
    """Senders are heads, each before every receiving head's layer."""
    from interp_assert.evaluate.circuit_layout import parse_head

    for sender in senders:
        if sender.kind != "head":
            raise QuantityError(f"path patching sends from heads; '{sender.label}' is a "
                                f"{sender.kind}", hint="name sender heads L{layer}H{head}")
    for receiver in receivers:
        head = parse_head(receiver.label)
        if receiver.label != END and head is None:
            raise QuantityError(f"path patching receiver '{receiver.label}' is not a head",
                                hint="receivers are heads with 'queries', 'keys' or 'values',"
                                     " or 'logits'")
        late = [s.label for s in senders if head is not None and (s.layer or 0) >= head[0]]
        if late:
            raise QuantityError(f"no path from {', '.join(late)} to {receiver.label}: a sender "
                                "must sit in an earlier layer than its receiver",
                                hint="pick receivers in later layers than the senders")


def _frozen_apply(corrupted: np.ndarray, keep: tuple[int, ...]) -> Any:
    """A hook that sets every head of a ``hook_z`` output to its corrupted value except the
    heads in ``keep`` (senders of that layer)."""

    def apply(output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = output[0] if isinstance(output, tuple | list) else output
        frozen = torch.as_tensor(corrupted[np.asarray(batch["_index"])], dtype=tensor.dtype,
                                 device=tensor.device)
        if tuple(frozen.shape) != tuple(tensor.shape):
            raise QuantityError(f"freezing heads: the corrupted activation has shape "
                                f"{tuple(frozen.shape)}, this batch {tuple(tensor.shape)}",
                                hint="use datasets with equal sequence lengths")
        new = frozen.clone()
        for head in keep:
            new[:, :, head] = tensor[:, :, head]
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return apply


def frozen_layers(senders: Sequence[Component], stop: int) -> list[Component]:
    """The whole ``hook_z`` of each layer after the first sender's and before ``stop``."""
    first = min(s.layer or 0 for s in senders)
    template = layer_template(senders[0])
    return [Component(template.replace("{l}", str(layer)), template.replace("{l}", str(layer)),
                      "module", layer) for layer in range(first + 1, stop)]


def last_layer(receivers: Sequence[Receiver], n_layers: int) -> int:
    """Where freezing stops: the last receiving head's layer (inputs of a layer depend only on
    the layers before it), or past the model's last layer for ``logits``."""
    from interp_assert.evaluate.circuit_layout import parse_head

    if any(r.label == END for r in receivers):
        return n_layers
    return max((parse_head(r.label) or (0, 0))[0] for r in receivers)


def sender_pass(ctx: WeightContext, senders: Sequence[Component], source: DatasetSpec,
                target: DatasetSpec, positions: tuple[int, ...] | None, stop: int
                ) -> tuple[Intervention, ...]:
    """Pass 2's interventions: senders patched from ``source``, every other head of the
    layers after the first sender's and before ``stop`` frozen at its value on ``target``."""
    patched = patching(ctx, senders, source, target, positions)
    layers = frozen_layers(senders, stop)
    corrupted = activations(ctx, target, layers)
    frozen = []
    for layer in layers:
        keep = tuple(sorted(s.index or 0 for s in senders if s.layer == layer.layer))
        frozen.append(Intervention(layer.hook, ("freeze", layer.hook, keep, target),
                                   _frozen_apply(corrupted[layer.label], keep)))
    return (*patched, *frozen)


def path_interventions(ctx: WeightContext, senders: Sequence[Component],
                       receivers: Sequence[Receiver], source: DatasetSpec, target: DatasetSpec,
                       positions: tuple[int, ...] | None, n_layers: int
                       ) -> tuple[Intervention, ...]:
    """The interventions of the measured run (pass 3; pass 2's own with ``logits``)."""
    check_path(senders, receivers)
    second = sender_pass(ctx, senders, source, target, positions,
                         last_layer(receivers, n_layers))
    if any(r.label == END for r in receivers):
        if len(receivers) > 1:
            raise QuantityError("'logits' is the whole end of the model: list it alone",
                                hint="write one claim per receiver set")
        return second
    inputs = [part for receiver in receivers for part in receiver.parts(layer_template(senders[0]))]
    subject = ctx.subject
    for part in inputs:
        announce(ctx.plan, subject, target, _sink_key(part), lambda p=part: SliceSink(p), second)
    captured = {part.label: request(ctx.plan, subject, target, _sink_key(part),
                                    lambda p=part: SliceSink(p), second) for part in inputs}
    names = tuple(s.label for s in senders)
    return tuple(Intervention(part.hook, ("path", names, part.label, positions, source, target),
                              Replacement(part, "patch", None, captured[part.label]).apply)
                 for part in inputs)
