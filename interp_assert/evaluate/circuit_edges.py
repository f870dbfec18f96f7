"""Edge-level ablation for circuits of edges (``L0H1 -> L1H2.k``, ``L1H2 -> logits``).

An edge runs from a sender head's output to a receiving head's query, key or value input, or to
the logits (the final residual stream). With a set K of kept edges, every receiver input reads
each earlier head's output through the edge between them: the head's output in this same
ablated run when the edge is in K, its mean over the reference dataset (per position) when it
is not ("Hypothesis Testing the Circuit Hypothesis in LLMs", edge-based circuits; ACDC). The
token and position embeddings are not nodes: every receiver reads them as they are; MLPs are
not nodes either and are recomputed in each pass (as in the IOI paper's path patching).

Built from planned passes, layer by layer (heads of a layer depend only on earlier layers):

1. the means of every layer's ``hook_z`` on the reference dataset; the first layer's heads,
   which no edge reaches, keep their clean ``hook_z``;
2. per later layer, per distinct set P of kept senders among that layer's receiver inputs: the
   target run with every earlier head's ``hook_z`` written (its ablated-run value if in P, its
   mean if not), capturing the layer's ``hook_q`` / ``hook_k`` / ``hook_v``; then the run with
   those inputs written, capturing the layer's ablated-run ``hook_z``. These passes depend
   only on P (or the layer's senders) and on the kept edges into earlier layers, and are
   keyed by those: the edge sets of one claim (the circuit, its complement, each edge left
   out, random sets) share every such pass they agree on;
3. the measured run: every head's ``hook_z`` written with its ablated-run value if its edge to
   the logits is kept, with its mean if not.

Kept everything, this is the clean model; kept nothing, every head mean-ablated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import Layout, parse_head
from interp_assert.evaluate.circuit_weights import WeightContext
from interp_assert.evaluate.forward import Intervention, KeepingSink, announce, request
from interp_assert.evaluate.interventions import activations, component
from interp_assert.loading.data import DatasetSpec

INPUT_HOOKS = {"q": "hook_q", "k": "hook_k", "v": "hook_v"}
END = "logits"


def split_edge(edge: str) -> tuple[str, str, str | None]:
    """``L0H1 -> L1H2.k`` -> (``L0H1``, ``L1H2``, ``k``); ``L1H2 -> logits`` -> (.., END, None)."""
    sender, receiver = (part.strip() for part in edge.split("->"))
    if receiver == END:
        return sender, END, None
    head, letter = receiver.split(".")
    return sender, head, letter


def edge_universe(heads: Sequence[str]) -> list[str]:
    """Every edge of a model with these heads: each head to each input of each head of a later
    layer, and each head to the logits."""
    located = sorted((parse_head(h) or (0, 0), h) for h in heads)
    edges = []
    for (layer, _), sender in located:
        for (later, _), receiver in located:
            if later > layer:
                edges.extend(f"{sender} -> {receiver}.{x}" for x in INPUT_HOOKS)
        edges.append(f"{sender} -> {END}")
    return edges


def check_edges(edges: Sequence[str], heads: Sequence[str], name: str) -> None:
    """Every head an edge names exists in the model."""
    known = set(heads)
    for edge in edges:
        sender, receiver, _ = split_edge(edge)
        for head in (sender, receiver):
            if head != END and head not in known:
                raise QuantityError(f"circuit '{name}': edge '{edge}' names {head}, which the "
                                    f"model does not have ({len(known)} heads)",
                                    hint="name heads that exist in the circuit's edges")


class _HeadWrite:
    """Writes whole heads' slices of a ``[batch, pos, head, d]`` hook output: per sample
    (``[n, pos, d]``, rows by ``batch['_index']``) or per position (``[pos, d]``, a mean)."""

    def __init__(self, hook: str, values: dict[int, np.ndarray], per_sample: dict[int, bool]
                 ) -> None:
        self.hook, self.values, self.per_sample = hook, values, per_sample

    def apply(self, output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = output[0] if isinstance(output, tuple | list) else output
        new = tensor.clone()
        index = np.asarray(batch["_index"])
        for head, value in self.values.items():
            chosen = value[index] if self.per_sample[head] else value
            fill = torch.as_tensor(chosen, dtype=new.dtype, device=new.device)
            if tuple(fill.shape[-2:]) != tuple(new[:, :, head].shape[-2:]):
                raise QuantityError(f"edge ablation of {self.hook}: the written value has shape "
                                    f"{tuple(fill.shape)}, this batch's head "
                                    f"{tuple(new[:, :, head].shape)}",
                                    hint="use datasets with equal sequence lengths")
            new[:, :, head] = fill
        return (new, *output[1:]) if isinstance(output, tuple) else new


class _WholeSink(KeepingSink):
    """Captures a whole hook output (float32) over a dataset."""

    def __init__(self, hook: str) -> None:
        self.hook = hook
        self.parts = []

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        tensor = value[0] if isinstance(value, tuple | list) else value
        self.parts.append(tensor.detach().float().cpu().numpy())


def _capture(ctx: WeightContext, dataset: DatasetSpec, hooks: Sequence[str],
             interventions: tuple[Intervention, ...]) -> dict[str, np.ndarray]:
    """Each hook's whole output on ``dataset`` under ``interventions`` (one pass)."""
    for hook in hooks:
        announce(ctx.plan, ctx.subject, dataset, ("edge-capture", hook),
                 lambda h=hook: _WholeSink(h), interventions)
    return {hook: request(ctx.plan, ctx.subject, dataset, ("edge-capture", hook),
                          lambda h=hook: _WholeSink(h), interventions) for hook in hooks}


class EdgeAblation:
    """The passes of one kept edge set (see the module docstring)."""

    def __init__(self, ctx: WeightContext, heads: Sequence[str], reference: DatasetSpec,
                 target: DatasetSpec, layout: Layout) -> None:
        self.ctx, self.reference, self.target = ctx, reference, target
        self.template = layout.hook("hook_z")
        self.layers: dict[int, list[int]] = {}
        for label in heads:
            layer, head = parse_head(label) or (0, 0)
            self.layers.setdefault(layer, []).append(head)
        parts = [component(self.z_hook(layer)) for layer in sorted(self.layers)]
        captured = activations(ctx, reference, parts)
        self.means = {layer: captured[self.z_hook(layer)].mean(axis=0, dtype=np.float64)
                      for layer in self.layers}

    def z_hook(self, layer: int) -> str:
        return self.template.replace("{l}", str(layer))

    def input_hook(self, layer: int, letter: str) -> str:
        return self.z_hook(layer).rsplit(".", 1)[0] + "." + INPUT_HOOKS[letter]

    def _writes(self, z: dict[int, np.ndarray], senders: set[tuple[int, int]], below: int,
                key: tuple[Any, ...]) -> tuple[Intervention, ...]:
        """``hook_z`` of every layer before ``below``: the ablated-run value of the heads in
        ``senders``, the reference mean of the others."""
        writes = []
        for layer in sorted(k for k in self.layers if k < below):
            values = {h: (z[layer][:, :, h] if (layer, h) in senders else self.means[layer][:, h])
                      for h in self.layers[layer]}
            flags = {h: (layer, h) in senders for h in self.layers[layer]}
            write = _HeadWrite(self.z_hook(layer), values, flags)
            writes.append(Intervention(self.z_hook(layer), ("edge-z", layer, key,
                                                            self.reference, self.target),
                                       write.apply))
        return tuple(writes)

    def interventions(self, kept: Sequence[str]) -> tuple[Intervention, ...]:
        """The measured run's interventions with only ``kept`` edges clean."""
        incoming: dict[tuple[int, int, str], set[tuple[int, int]]] = {}
        to_end: set[tuple[int, int]] = set()
        for edge in kept:
            sender, receiver, letter = split_edge(edge)
            source = parse_head(sender)
            if source is None:
                raise QuantityError(f"edge '{edge}': the sender is not a head")
            if receiver == END:
                to_end.add(source)
            else:
                layer, head = parse_head(receiver) or (0, 0)
                incoming.setdefault((layer, head, letter or "q"), set()).add(source)
        order = sorted(self.layers)
        signature = tuple(sorted(kept))
        # a layer's passes depend only on the kept edges into earlier layers (and its own
        # receivers' senders): keyed so, edge sets that agree there share those passes
        into = {edge: parse_head(split_edge(edge)[1]) for edge in signature}
        first = order[0]
        hook = self.z_hook(first)  # clean: read in the pass that the means come from
        z = {first: activations(self.ctx, self.target, [component(hook)])[hook]}
        for layer in order[1:]:
            inputs: dict[str, dict[int, np.ndarray]] = {x: {} for x in INPUT_HOOKS}
            groups: dict[tuple[tuple[int, int], ...], list[tuple[int, str]]] = {}
            for head in self.layers[layer]:
                for letter in INPUT_HOOKS:
                    pattern = tuple(sorted(incoming.get((layer, head, letter), set())))
                    groups.setdefault(pattern, []).append((head, letter))
            upstream = tuple(edge for edge in signature
                             if into[edge] is not None and into[edge][0] < layer)
            for pattern, receivers in groups.items():
                writes = self._writes(z, set(pattern), layer, ("in", pattern, upstream))
                hooks = sorted({self.input_hook(layer, x) for _, x in receivers})
                captured = _capture(self.ctx, self.target, hooks, writes)
                for head, letter in receivers:
                    inputs[letter][head] = captured[self.input_hook(layer, letter)][:, :, head]
            inside = (tuple(sorted((key, tuple(value)) for key, value in groups.items())),
                      upstream)
            replaced = tuple(
                Intervention(self.input_hook(layer, x), ("edge-input", layer, x, inside,
                                                         self.reference, self.target),
                             _HeadWrite(self.input_hook(layer, x), inputs[x],
                                        dict.fromkeys(inputs[x], True)).apply)
                for x in INPUT_HOOKS)
            z[layer] = _capture(self.ctx, self.target, [self.z_hook(layer)],
                                replaced)[self.z_hook(layer)]
        return self._writes(z, to_end, order[-1] + 1, ("end", signature))
