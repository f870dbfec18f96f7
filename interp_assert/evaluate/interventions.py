"""Ablation and activation patching as planned-forward-pass interventions.

A component is a head ``L{l}H{h}`` (its slice of ``blocks.{l}.attn.hook_z``), an MLP neuron
``L{l}N{i}`` (its slice of ``blocks.{l}.mlp.hook_post``) or any hooked module by dotted path
(its whole output). Its activation is replaced by zero, by its mean over a reference dataset
(per position), by its value on another input of the reference dataset (resampling, seeded),
or, for patching, by its value on the same sample of another dataset. A causal claim's effect is
the change of a metric under such an intervention (:func:`effect_of`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.evaluate.circuit_layout import Layout, parse_head, parse_neuron
from interp_assert.evaluate.circuit_weights import WeightContext, weights_for
from interp_assert.evaluate.forward import Intervention, KeepingSink, Sink, announce, request
from interp_assert.loading.data import DatasetSpec, load_dataset

ABLATIONS = ("zero", "mean", "resample")
_MLP = re.compile(r"^MLP(\d+)$")


@dataclass(frozen=True)
class Component:
    """A head, a neuron or a module whose output an intervention replaces."""

    label: str
    hook: str
    kind: str  # "head", "neuron" or "module"
    layer: int | None = None
    index: int | None = None

    def view(self, value: Any) -> Any:
        """The component's part of a hook output (a view: writing to it writes the output)."""
        if self.kind == "head":
            if value.ndim != 4:
                raise QuantityError(f"{self.label}: '{self.hook}' has shape {tuple(value.shape)}"
                                    "; a head needs [batch, pos, head, d_head]")
            self._check_index(value.shape[2], "H")
            return value[:, :, self.index]
        if self.kind == "neuron":
            self._check_index(value.shape[-1], "N")
            return value[..., self.index]
        return value

    def _check_index(self, width: int, letter: str) -> None:
        """A head or neuron past the layer's width: did you mean, with the valid range."""
        if self.index is not None and not 0 <= self.index < width:
            what = "heads" if letter == "H" else "neurons"
            close = f"L{self.layer}{letter}{width - 1}"
            raise QuantityError(f"{self.label}: layer {self.layer} has {width} {what} "
                                f"(L{self.layer}{letter}0..{close}); did you mean '{close}'?",
                                hint=f"name {what} within L{self.layer}{letter}0..{close}")


def component(label: str, layout: Layout | None = None) -> Component:
    """Parse ``L1H2``, ``L0N7`` or a module path into a :class:`Component`."""
    layout = layout or Layout()
    if (head := parse_head(label)) is not None:
        return Component(label, layout.hook("hook_z").replace("{l}", str(head[0])), "head",
                         head[0], head[1])
    if (neuron := parse_neuron(label)) is not None:
        return Component(label, layout.hook("hook_post").replace("{l}", str(neuron[0])),
                         "neuron", neuron[0], neuron[1])
    if (mlp := _MLP.match(label)) is not None:  # a whole MLP's output, as a path sender
        block = layout.hook("hook_z").replace("{l}", mlp[1]).rsplit(".", 2)[0]
        return Component(label, f"{block}.hook_mlp_out", "module", int(mlp[1]))
    if "." not in label:
        raise QuantityError(f"'{label}' is not a component",
                            hint="name heads L{layer}H{head}, neurons L{layer}N{index}, or a "
                                 "hooked module by its dotted path (blocks.0.hook_attn_out)")
    return Component(label, label, "module")


def _tensor(value: Any) -> Any:
    return value[0] if isinstance(value, tuple | list) else value


class SliceSink(KeepingSink):
    """Captures one component's activation (float32) over a dataset."""

    def __init__(self, part: Component) -> None:
        self.part = part
        self.hook = part.hook
        self.parts = []

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        self.parts.append(self.part.view(_tensor(value)).detach().float().cpu().numpy())


def _sink_key(part: Component) -> Hashable:
    return ("component", part.hook, part.kind, part.index)


def reference_sinks(parts: Sequence[Component]) -> list[tuple[Hashable, Callable[[], Sink]]]:
    """(sink key, factory) of each component's clean activation, as :func:`activations` reads
    them: what a causal claim plans, so that its reference pass is shared."""
    return [(_sink_key(part), lambda p=part: SliceSink(p)) for part in parts]


def activations(ctx: WeightContext, dataset: DatasetSpec, parts: Sequence[Component]
                ) -> dict[str, np.ndarray]:
    """Each component's clean activation ``[sample, pos, ...]`` on ``dataset`` (one pass)."""
    subject = ctx.subject
    for part in parts:
        announce(ctx.plan, subject, dataset, _sink_key(part), lambda p=part: SliceSink(p))
    return {part.label: request(ctx.plan, subject, dataset, _sink_key(part),
                                lambda p=part: SliceSink(p)) for part in parts}


@dataclass(frozen=True)
class Replacement:
    """How one component's activation is replaced during the intervened pass."""

    part: Component
    how: str  # zero, mean, resample or patch
    positions: tuple[int, ...] | None = None
    source: np.ndarray | None = None  # mean [pos, ...] or per-sample [n, pos, ...]
    order: np.ndarray | None = None  # resample: sample i takes source[order[i]]

    def apply(self, output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = _tensor(output)
        new = tensor.clone()
        view = self.part.view(new)
        if self.how == "zero":
            value: Any = torch.zeros((), dtype=new.dtype, device=new.device)
        else:
            assert self.source is not None
            if self.how == "mean":
                chosen = self.source
            else:
                index = np.asarray(batch["_index"])
                chosen = self.source[self.order[index] if self.order is not None else index]
            per_sample = chosen.shape if self.how == "mean" else chosen.shape[1:]
            if tuple(per_sample) != tuple(view.shape[1:]):
                raise QuantityError(
                    f"{self.how} for {self.part.label}: the reference activation has shape "
                    f"{tuple(per_sample)} per sample, this batch {tuple(view.shape[1:])}",
                    hint="use datasets with equal sequence lengths")
            value = torch.as_tensor(chosen, dtype=new.dtype, device=new.device)
        if self.positions is None:
            view[...] = value
        else:
            where = list(self.positions)
            if value.ndim == 0:
                view[:, where] = value
            elif self.how == "mean":
                view[:, where] = value[where]
            else:
                view[:, where] = value[:, where]
        if isinstance(output, tuple):
            return (new, *output[1:])
        return new


def resample_order(n: int, n_source: int, seed: int, same: bool) -> np.ndarray:
    """Seeded source indices: sample i takes another input (never itself when ``same``)."""
    rng = np.random.default_rng(seed)
    if same and n_source > 1:
        return (np.arange(n) + rng.integers(1, n_source, size=n)) % n_source
    return rng.integers(0, n_source, size=n)


def ablation(ctx: WeightContext, parts: Sequence[Component], how: str, target: DatasetSpec,
             reference: DatasetSpec, positions: tuple[int, ...] | None, seed: int
             ) -> tuple[Intervention, ...]:
    """Interventions ablating ``parts`` while running ``target`` (means and resampled values
    come from ``reference``)."""
    sources = activations(ctx, reference, parts) if how != "zero" else {}
    interventions = []
    for part in parts:
        source = order = None
        if how == "mean":
            source = sources[part.label].mean(axis=0, dtype=np.float64)
        elif how == "resample":
            source = sources[part.label]
            n = load_dataset(target).n
            order = resample_order(n, source.shape[0], seed, same=reference == target)
        replacement = Replacement(part, how, positions, source, order)
        key = ablation_key(part, how, positions, reference, seed)
        interventions.append(Intervention(part.hook, key, replacement.apply))
    return tuple(interventions)


def ablation_key(part: Component, how: str, positions: tuple[int, ...] | None,
                 reference: DatasetSpec, seed: int) -> Hashable:
    """What identifies an ablation of ``part`` (its pass's key; known before any pass)."""
    return ("ablate", how, part.label, positions, reference if how != "zero" else None,
            seed if how == "resample" else None)


def patching_key(part: Component, positions: tuple[int, ...] | None,
                 source: DatasetSpec) -> Hashable:
    """What identifies patching ``part`` from ``source`` (known before any pass)."""
    return ("patch", part.label, positions, source)


def patching(ctx: WeightContext, parts: Sequence[Component], source: DatasetSpec,
             target: DatasetSpec, positions: tuple[int, ...] | None
             ) -> tuple[Intervention, ...]:
    """Interventions writing each part's activation on ``source`` sample i into the run of
    ``target`` sample i."""
    n_source, n_target = load_dataset(source).n, load_dataset(target).n
    if n_source != n_target:
        raise QuantityError(f"patching needs paired datasets: '{source.name}' has {n_source} "
                            f"samples, '{target.name}' {n_target}",
                            hint="generate both with the same n (sample i of one is the "
                                 "counterpart of sample i of the other)")
    sources = activations(ctx, source, parts)
    return tuple(Intervention(part.hook, patching_key(part, positions, source),
                              Replacement(part, "patch", positions, sources[part.label]).apply)
                 for part in parts)


def component_pool(ctx: WeightContext, kind: str) -> list[str]:
    """Every head (or neuron) label of the model, from its weights or its ``cfg``."""
    try:
        weights = weights_for(ctx)
        return list(weights.head_labels() if kind == "head" else weights.neuron_labels())
    except InterpAssertError:
        pass
    cfg = getattr(ctx.subject.model, "cfg", None)
    layers = getattr(cfg, "n_layers", None)
    width = getattr(cfg, "n_heads" if kind == "head" else "d_mlp", None)
    if not layers or not width:
        raise QuantityError(f"cannot list the model's {kind}s for random controls",
                            hint="use TransformerLens weight names, a 'layout:', or a model "
                                 "with cfg.n_layers / cfg.n_heads / cfg.d_mlp")
    letter = "H" if kind == "head" else "N"
    return [f"L{layer}{letter}{i}" for layer in range(layers) for i in range(width)]


def random_sets(pool: Sequence[str], exclude: Sequence[str], size: int, draws: int,
                seed: int) -> list[tuple[str, ...]]:
    """Up to ``draws`` distinct random sets of ``size`` labels from ``pool`` minus
    ``exclude`` (all of them when there are at most ``draws``), seeded."""
    candidates = [label for label in pool if label not in set(exclude)]
    if len(candidates) < size:
        return []
    if math.comb(len(candidates), size) <= draws:
        return list(itertools.combinations(candidates, size))
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, ...]] = []
    while len(chosen) < draws:
        pick = tuple(sorted(rng.choice(len(candidates), size=size, replace=False)))
        labels = tuple(candidates[i] for i in pick)
        if labels not in chosen:
            chosen.append(labels)
    return chosen


def effect_of(change: str, before: float, after: float, source: float | None = None) -> float:
    """The effect of an intervention on a metric (``change`` singular or plural)."""
    verb = change.rstrip("s") if change != "changes" else "change"
    if verb == "drop":
        return before - after
    if verb == "rise":
        return after - before
    if verb == "change":
        return abs(after - before)
    if verb == "recover":
        if source is None:
            raise QuantityError("'recovers' compares a patched run with its source and target; "
                                "use it with 'patch ... from SOURCE into TARGET'")
        with np.errstate(divide="ignore", invalid="ignore"):
            return float((after - before) / (source - before)) if source != before \
                else float("nan")
    raise QuantityError(f"unknown change '{change}'")


def head_grid(pool: Sequence[str], effect: Callable[[str], float]
              ) -> tuple[np.ndarray, list[str], list[str]]:
    """``effect(label)`` of each head of ``pool`` as a ``[layer, head]`` grid, with its row and
    column labels; NaN where the effect cannot be measured."""
    heads = [parse_head(label) for label in pool]
    layers = sorted({h[0] for h in heads if h is not None})
    width = 1 + max(h[1] for h in heads if h is not None)
    grid = np.full((len(layers), width), np.nan)
    for label, head in zip(pool, heads):
        if head is None:
            continue
        try:
            grid[layers.index(head[0]), head[1]] = effect(label)
        except InterpAssertError:
            continue
    return grid, [f"L{layer}" for layer in layers], [f"H{h}" for h in range(width)]
