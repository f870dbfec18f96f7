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

A sender may also be a whole MLP (``MLP0``: ``blocks.0.hook_mlp_out``), and a receiver an MLP's
input (``MLP1.in``: ``blocks.1.mlp.hook_pre``, through which alone the MLP reads its input) or
the final residual stream (``resid_final``: pass 2 with every MLP after the first sender frozen
too, so that only the senders' direct paths reach it).
"""

from __future__ import annotations

import re
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
FINAL = "resid_final"
#: the TransformerLens template of a head's ``hook_z`` (the other hooks sit beside it)
Z_TEMPLATE = "blocks.{l}.attn.hook_z"
_MLP_IN = re.compile(r"^MLP(\d+)\.in$")
_MLP = re.compile(r"^MLP(\d+)$")


def mlp_input(label: str) -> int | None:
    """``MLP1.in`` -> 1; None for other labels."""
    match = _MLP_IN.match(label)
    return int(match[1]) if match else None


def is_mlp(part: Component) -> bool:
    """Whether a sender is a whole MLP (``MLP0``)."""
    return part.kind == "module" and _MLP.match(part.label) is not None


def block(template: str, layer: int) -> str:
    """The block of a layer (``blocks.{l}.attn.hook_z`` -> ``blocks.1``)."""
    return template.replace("{l}", str(layer)).rsplit(".", 2)[0]


@dataclass(frozen=True)
class Receiver:
    """A receiving head's query, key or value input, or the end of the model (``logits``)."""

    label: str  # L1H2, MLP1.in, "logits" or "resid_final"
    inputs: tuple[str, ...] = ()  # words of INPUTS; empty for the others

    def __str__(self) -> str:
        return f"{self.label} {' '.join(self.inputs)}" if self.inputs else self.label

    def parts(self, template: str) -> list[Component]:
        """The receiver's input slices; their hooks sit beside ``hook_z`` in ``template``
        (``blocks.{l}.attn.hook_z`` -> ``blocks.{l}.attn.hook_k``)."""
        from interp_assert.evaluate.circuit_layout import parse_head

        head = parse_head(self.label)
        if (layer := mlp_input(self.label)) is not None:
            hook = f"{block(template, layer)}.mlp.hook_pre"
            return [Component(self.label, hook, "module", layer)]
        if head is None:
            return []
        folder = template.replace("{l}", str(head[0])).rsplit(".", 1)[0]
        return [Component(f"{self.label} {word}", f"{folder}.{INPUTS[word]}", "head", head[0],
                          head[1]) for word in self.inputs]


def layer_template(part: Component) -> str:
    """A head's hook with its layer as ``{l}`` (``blocks.0.attn.hook_z`` -> ``blocks.{l}...``)."""
    return part.hook.replace(f".{part.layer}.", ".{l}.", 1)


def check_path(senders: Sequence[Component], receivers: Sequence[Receiver]) -> None:
    """Senders are heads or MLPs, each before every receiver (a head of an MLP's own layer
    is before it)."""
    from interp_assert.evaluate.circuit_layout import parse_head

    for sender in senders:
        if sender.kind != "head" and not is_mlp(sender):
            raise QuantityError(f"path patching sends from heads and MLPs; '{sender.label}' is "
                                f"a {sender.kind}", hint="name senders L{layer}H{head} or "
                                                         "MLP{layer}")
    for receiver in receivers:
        head = parse_head(receiver.label)
        mlp = mlp_input(receiver.label)
        if receiver.label not in (END, FINAL) and head is None and mlp is None:
            raise QuantityError(f"path patching receiver '{receiver.label}' is not a head or "
                                "an MLP's input",
                                hint="receivers are heads with 'queries', 'keys' or 'values', "
                                     "MLP{layer}.in, 'logits' or 'resid_final'")
        late = [s.label for s in senders if head is not None and (s.layer or 0) >= head[0]]
        late += [s.label for s in senders if mlp is not None and (
            (s.layer or 0) > mlp or (is_mlp(s) and s.layer == mlp))]
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


def frozen_layers(senders: Sequence[Component], stop: int, template: str | None = None
                  ) -> list[Component]:
    """The whole ``hook_z`` of each layer after the first sender's and before ``stop``."""
    first = min(s.layer or 0 for s in senders)
    heads = [s for s in senders if s.kind == "head"]
    template = template or (layer_template(heads[0]) if heads else Z_TEMPLATE)
    return [Component(template.replace("{l}", str(layer)), template.replace("{l}", str(layer)),
                      "module", layer) for layer in range(first + 1, stop)]


def last_layer(receivers: Sequence[Receiver], n_layers: int) -> int:
    """Where freezing stops: the last receiving head's layer (inputs of a layer depend only on
    the layers before it), past an MLP receiver's layer (its heads come before it), or past
    the model's last layer for ``logits`` and ``resid_final``."""
    from interp_assert.evaluate.circuit_layout import parse_head

    if any(r.label in (END, FINAL) for r in receivers):
        return n_layers
    return max(mlp + 1 if (mlp := mlp_input(r.label)) is not None
               else (parse_head(r.label) or (0, 0))[0] for r in receivers)


def sender_pass(ctx: WeightContext, senders: Sequence[Component], source: DatasetSpec,
                target: DatasetSpec, positions: tuple[int, ...] | None, stop: int,
                template: str | None = None) -> tuple[Intervention, ...]:
    """Pass 2's interventions: senders patched from ``source``, every other head of the
    layers after the first sender's and before ``stop`` frozen at its value on ``target``."""
    patched = patching(ctx, senders, source, target, positions)
    layers = frozen_layers(senders, stop, template)
    corrupted = activations(ctx, target, layers)
    frozen = []
    for layer in layers:
        keep = kept_heads(senders, layer)
        frozen.append(Intervention(layer.hook, freeze_key(layer, keep, target),
                                   _frozen_apply(corrupted[layer.label], keep)))
    return (*patched, *frozen)


def kept_heads(senders: Sequence[Component], layer: Component) -> tuple[int, ...]:
    """The senders' heads of a frozen layer (pass 2 leaves them running)."""
    return tuple(sorted(s.index or 0 for s in senders
                        if s.layer == layer.layer and s.kind == "head"))


def freeze_key(layer: Component, keep: tuple[int, ...], target: DatasetSpec) -> Any:
    """What identifies freezing ``layer`` on ``target`` but ``keep`` (known before any pass)."""
    return ("freeze", layer.hook, keep, target)


def path_key(senders: Sequence[Component], part: Component, positions: tuple[int, ...] | None,
             source: DatasetSpec, target: DatasetSpec) -> Any:
    """What identifies patching receiver input ``part`` with pass 2's value."""
    return ("path", tuple(s.label for s in senders), part.label, positions, source, target)


def path_interventions(ctx: WeightContext, senders: Sequence[Component],
                       receivers: Sequence[Receiver], source: DatasetSpec, target: DatasetSpec,
                       positions: tuple[int, ...] | None, n_layers: int,
                       template: str = Z_TEMPLATE, mlps: bool = False
                       ) -> tuple[Intervention, ...]:
    """The interventions of the measured run (pass 3; pass 2's own with ``logits`` and
    ``resid_final``). ``template`` is the heads' ``hook_z``; ``mlps``: the model has MLPs."""
    check_path(senders, receivers)
    second = sender_pass(ctx, senders, source, target, positions,
                         last_layer(receivers, n_layers), template)
    if any(r.label in (END, FINAL) for r in receivers):
        if len(receivers) > 1:
            raise QuantityError(f"'{receivers[0].label}' is the whole end of the model: list "
                                "it alone", hint="write one claim per receiver set")
        if receivers[0].label == FINAL and mlps:
            return second + frozen_mlps(ctx, senders, target, n_layers, template)
        return second
    inputs = [part for receiver in receivers for part in receiver.parts(template)]
    subject = ctx.subject
    for part in inputs:
        announce(ctx.plan, subject, target, _sink_key(part), lambda p=part: SliceSink(p), second)
    captured = {part.label: request(ctx.plan, subject, target, _sink_key(part),
                                    lambda p=part: SliceSink(p), second) for part in inputs}
    return tuple(Intervention(part.hook, path_key(senders, part, positions, source, target),
                              Replacement(part, "patch", None, captured[part.label]).apply)
                 for part in inputs)


def frozen_mlps(ctx: WeightContext, senders: Sequence[Component], target: DatasetSpec,
                n_layers: int, template: str) -> tuple[Intervention, ...]:
    """Every MLP from the first sender's layer on (except the senders) frozen at its output on
    ``target``: with them, only the senders' direct paths reach the final residual stream."""
    first = min(s.layer or 0 for s in senders)
    sending = {s.hook for s in senders}
    hooks = [f"{block(template, layer)}.hook_mlp_out" for layer in range(first, n_layers)]
    parts = [Component(hook, hook, "module", layer)
             for layer, hook in enumerate(hooks, first) if hook not in sending]
    corrupted = activations(ctx, target, parts)
    return tuple(Intervention(part.hook, ("freeze-mlp", part.hook, target),
                              Replacement(part, "patch", None, corrupted[part.label]).apply)
                 for part in parts)
