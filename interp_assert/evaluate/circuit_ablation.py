"""What circuit hypothesis tests measure with: mean ablation of many heads or neurons at once
(one intervention per hook, whatever the number of components), seeded random circuits of the
same size, and the faithfulness, completeness and minimality scores.

Mean ablation replaces each ablated head's ``hook_z`` slice (neuron's ``hook_post`` entry) by
its mean over the reference dataset's samples, per position: the same value
:func:`interp_assert.evaluate.interventions.ablation` writes for one component.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.circuit_weights import WeightContext
from interp_assert.evaluate.forward import Intervention, Sink
from interp_assert.evaluate.interventions import (
    Component,
    activations,
    component,
    reference_sinks,
)
from interp_assert.loading.data import DatasetSpec

#: attempts per wanted random circuit before the draw gives up (duplicates are redrawn)
_ATTEMPTS = 50


def hook_groups(labels: Sequence[str], layout: Layout) -> dict[str, list[Component]]:
    """The components of ``labels`` grouped by the hook their activation lives in."""
    groups: dict[str, list[Component]] = {}
    for label in labels:
        part = component(label, layout)
        groups.setdefault(part.hook, []).append(part)
    return groups


def whole_hook_sinks(hooks: Sequence[str]) -> list[tuple[Hashable, Callable[[], Sink]]]:
    """The clean whole-hook captures that the means are taken from (to plan them)."""
    return reference_sinks([component(hook) for hook in hooks])


def mean_ablation(ctx: WeightContext, labels: Sequence[str], reference: DatasetSpec,
                  layout: Layout) -> tuple[Intervention, ...]:
    """Interventions mean-ablating every component of ``labels`` (heads and/or neurons):
    one per hook, each writing the reference means of its components' indices."""
    groups = hook_groups(labels, layout)
    captured = activations(ctx, reference, [component(hook) for hook in groups])
    interventions = []
    for hook, parts in sorted(groups.items()):
        mean = captured[hook].mean(axis=0, dtype=np.float64)  # [pos, (head,) width]
        indices = tuple(sorted({int(p.index) for p in parts if p.index is not None}))
        grouped = _GroupAblation(parts[0], indices, mean)
        key = ("circuit-mean", hook, indices, reference)
        interventions.append(Intervention(hook, key, grouped.apply))
    return tuple(interventions)


class _GroupAblation:
    """Writes the reference mean into several heads' (neurons') slices of one hook output."""

    def __init__(self, first: Component, indices: tuple[int, ...], mean: np.ndarray) -> None:
        self.first, self.indices, self.mean = first, indices, mean

    def apply(self, output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = output[0] if isinstance(output, tuple | list) else output
        for index in (self.indices[0], self.indices[-1]):  # the range check names the label
            Component(self.first.label, self.first.hook, self.first.kind, self.first.layer,
                      index).view(tensor)
        new = tensor.clone()
        where = list(self.indices)
        if self.first.kind == "head":
            value = self.mean[:, where]
            target = new[:, :, where]
        else:
            value = self.mean[..., where]
            target = new[..., where]
        if tuple(value.shape) != tuple(target.shape[1:]):
            raise QuantityError(f"mean ablation of {self.first.hook}: the reference mean has "
                                f"shape {tuple(value.shape)} per sample, this batch "
                                f"{tuple(target.shape[1:])}",
                                hint="use datasets with equal sequence lengths")
        fill = torch.as_tensor(value, dtype=new.dtype, device=new.device)
        if self.first.kind == "head":
            new[:, :, where] = fill
        else:
            new[..., where] = fill
        if isinstance(output, tuple):
            return (new, *output[1:])
        return new


def random_circuits(pools: dict[str, Sequence[str]], sizes: dict[str, int],
                    exclude: frozenset[str], draws: int, seed: int
                    ) -> list[tuple[str, ...]]:
    """Up to ``draws`` distinct random circuits with ``sizes[kind]`` members of each kind,
    drawn uniformly without replacement from ``pools[kind]`` (members of the real circuit may
    be drawn; the real circuit itself, ``exclude``, never is), seeded. When there are at most
    ``draws`` such circuits, every one of them, in a fixed order."""
    kinds = [kind for kind in sorted(sizes) if sizes[kind] > 0]
    for kind in kinds:
        if len(pools[kind]) < sizes[kind]:
            raise QuantityError(f"the model has {len(pools[kind])} {kind}s, fewer than the "
                                f"circuit's {sizes[kind]}")
    total = math.prod(math.comb(len(pools[k]), sizes[k]) for k in kinds)
    if total - 1 <= draws:
        combos = itertools.product(*(itertools.combinations(pools[k], sizes[k])
                                     for k in kinds))
        every = [tuple(itertools.chain(*combo)) for combo in combos]
        return [c for c in every if frozenset(c) != exclude]
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, ...]] = []
    seen = {exclude}
    for _ in range(draws * _ATTEMPTS):
        if len(chosen) == draws:
            break
        labels: list[str] = []
        for kind in kinds:
            pick = sorted(rng.choice(len(pools[kind]), size=sizes[kind], replace=False))
            labels.extend(pools[kind][i] for i in pick)
        if frozenset(labels) not in seen:
            seen.add(frozenset(labels))
            chosen.append(tuple(labels))
    return chosen


def fraction(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is 0 or either is not finite."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def beaten(score: float, others: Sequence[float]) -> tuple[int, float, float]:
    """(k, fraction beaten, p): k random scores are at least ``score`` (a NaN random score
    counts as not beaten), the real one beats (N − k) / N of them, and the permutation-style
    p-value is (k + 1) / (N + 1). A NaN ``score`` beats none."""
    values = np.asarray(others, dtype=float)
    k = int(np.sum(~(values < score))) if math.isfinite(score) else values.size
    n = values.size
    return k, (n - k) / n if n else math.nan, (k + 1) / (n + 1)
