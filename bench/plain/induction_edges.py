"""Plain mirror of ``specs/induction_edges.claims.yaml``: a circuit of 12 edges of the 2-layer
attention-only induction model, tested for faithfulness (against 5 random edge circuits),
completeness and minimality.

In the run of an edge set K, each query, key and value input of a layer-1 head reads the
residual stream built from the embeddings and each layer-0 head's output: its clean ``hook_z``
when the edge is in K, its mean over the 50 samples (per position) otherwise; the logits read
each head's output (layer 0 clean, layer 1 as computed from those inputs) or its mean the same
way. With no LayerNorm or MLP this is one forward pass per edge set: the layer-1 q, k and v
computed from the clean pass's residual and layer-0 outputs are written into ``hook_q``,
``hook_k`` and ``hook_v``, and heads without their edge to the logits are mean-ablated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from bench.plain.common import checkpoint, keep, passes, replace
from bench.plain.induction_circuits_scores import advantage_samples, circuit_numbers, random_sets

HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
LETTERS = ("q", "k", "v")
#: every edge of the model: each layer-0 head into each input of each layer-1 head, and each
#: head into the logits (56)
UNIVERSE = [edge for layer in range(2) for s in range(4) for edge in (
    *(f"L0H{s} -> L1H{r}.{x}" for r in range(4) for x in LETTERS if layer == 0),
    f"L{layer}H{s} -> logits")]
CIRCUIT = [*(f"L0H{s} -> L1H{r}.k" for s in range(2) for r in range(4)),
           *(f"L1H{r} -> logits" for r in range(4))]
NAME = "induction-edges"

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("edges-faithful", None): f"{NAME} faithfulness",
    ("edges-complete", None): f"{NAME} completeness",
    ("edges-minimal", None): f"{NAME} minimality",
}


def numbers() -> dict[str, float]:
    from examples.induction.data import generate

    model = checkpoint("examples/induction/checkpoints/induction.pt")
    data = generate(50, 1234)
    tokens = data["tokens"]
    state = model.state_dict()
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    clean = passes(model, tokens, 50, {
        "blocks.0.hook_resid_pre": keep(store, "embedded"),
        "blocks.0.attn.hook_z": keep(store, "z0"), "blocks.1.attn.hook_z": keep(store, "z1")})
    embedded, z0 = torch.cat(store["embedded"]), torch.cat(store["z0"])
    means = [torch.cat(store[f"z{layer}"]).double().mean(0).float() for layer in range(2)]
    runs = {frozenset(UNIVERSE): advantage_samples(clean, data)}

    def inputs(kept: tuple[int, ...]) -> torch.Tensor:
        """Layer 1's residual input with the layer-0 heads outside ``kept`` at their mean."""
        z = z0.clone()
        for s in set(range(4)) - set(kept):
            z[:, :, s] = means[0][:, s]
        return embedded + (torch.einsum("bphd,hdm->bpm", z, state["blocks.0.attn.W_O"])
                           + state["blocks.0.attn.b_O"])

    def write(projected: dict[int, torch.Tensor]) -> Callable[..., torch.Tensor]:
        """A hook writing each layer-1 head's projected q, k or v."""
        def hook(_m: object, _i: object, out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            for r, value in projected.items():
                out[:, :, r] = value
            return out
        return hook

    def edge_run(kept_edges: frozenset[str]) -> np.ndarray:
        """Each sample's advantage in the run of the edge set ``kept_edges``."""
        residuals: dict[tuple[int, ...], torch.Tensor] = {}
        hooks = {}
        for x in LETTERS:
            projected = {}
            for r in range(4):
                senders = tuple(s for s in range(4) if f"L0H{s} -> L1H{r}.{x}" in kept_edges)
                if senders not in residuals:
                    residuals[senders] = inputs(senders)
                projected[r] = (residuals[senders] @ state[f"blocks.1.attn.W_{x.upper()}"][r]
                                + state[f"blocks.1.attn.b_{x.upper()}"][r])
            hooks[f"blocks.1.attn.hook_{x}"] = write(projected)
        for layer in range(2):
            cut = [h for h in range(4) if f"L{layer}H{h} -> logits" not in kept_edges]
            if cut:
                hooks[f"blocks.{layer}.attn.hook_z"] = replace(means[layer], cut)
        return advantage_samples(passes(model, tokens, 50, hooks), data)

    runs[frozenset()] = advantage_samples(passes(model, tokens, 50, {
        f"blocks.{layer}.attn.hook_z": replace(means[layer], [0, 1, 2, 3])
        for layer in range(2)}), data)
    whole = frozenset(CIRCUIT)
    randoms = random_sets(UNIVERSE, len(CIRCUIT), whole, 5)
    kept_sets = [whole, frozenset(UNIVERSE) - whole, *(whole - {m} for m in CIRCUIT),
                 *map(frozenset, randoms)]
    for kept in kept_sets:
        if kept not in runs:
            runs[kept] = edge_run(kept)
    return circuit_numbers(NAME, runs, UNIVERSE, CIRCUIT, randoms, None)
