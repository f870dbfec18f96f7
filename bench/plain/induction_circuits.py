"""Plain mirror of ``specs/induction_circuits.claims.yaml``: the circuit of six heads tested
for faithfulness (against 10 random circuits), completeness and minimality, with every head
outside the kept set mean-ablated (per position, means over the 100 samples)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from bench.plain.common import checkpoint, keep, passes, replace
from bench.plain.induction_circuits_scores import advantage_samples, circuit_numbers, random_sets

HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
CIRCUIT = ["L0H0", "L0H1", "L1H0", "L1H1", "L1H2", "L1H3"]
NAME = "induction"

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("circuit-faithful", None): f"{NAME} faithfulness",
    ("circuit-complete", None): f"{NAME} completeness",
    ("circuit-minimal", None): f"{NAME} minimality",
    ("circuit-faithful-surely", None): f"{NAME} faithfulness 95%",
    ("circuit-complete-surely", None): f"{NAME} completeness 95%",
    ("circuit-minimal-surely", None): f"{NAME} minimality 95%",
}


def numbers() -> dict[str, float]:
    from examples.induction.data import generate

    model = checkpoint("examples/induction/checkpoints/induction.pt")
    data = generate(100, 1234)
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    runs = {frozenset(HEADS): advantage_samples(passes(model, data["tokens"], 100, {
        f"blocks.{layer}.attn.hook_z": keep(store, f"z{layer}") for layer in range(2)}), data)}
    means = [torch.cat(store[f"z{layer}"]).double().mean(0).float() for layer in range(2)]

    def ablated_run(kept: frozenset[str]) -> np.ndarray:
        """Each sample's advantage with every head outside ``kept`` mean-ablated."""
        hooks = {}
        for layer in range(2):
            heads = [h for h in range(4) if f"L{layer}H{h}" not in kept]
            if heads:
                hooks[f"blocks.{layer}.attn.hook_z"] = replace(means[layer], heads)
        return advantage_samples(passes(model, data["tokens"], 100, hooks), data)

    whole = frozenset(CIRCUIT)
    randoms = random_sets(HEADS, len(CIRCUIT), whole, 10)
    kept_sets = [frozenset(), whole, frozenset(HEADS) - whole,
                 *(whole - {m} for m in CIRCUIT), *map(frozenset, randoms)]
    for kept in kept_sets:
        if kept not in runs:
            runs[kept] = ablated_run(kept)
    return circuit_numbers(NAME, runs, HEADS, CIRCUIT, randoms, 0.10)
