"""Direct logit attribution: the residual stream at the position predicting the answer, split
into the parts every component wrote, each read through the final norm with its scale frozen
(computed from the whole residual, as TransformerLens's ``apply_ln_to_stack`` does) and the
unembedding, onto the answer's logit difference.

Components: ``embed`` and ``pos_embed`` (``hook_embed``, ``hook_pos_embed``), every head
``L{l}H{h}`` (``hook_z`` at the position times that head's ``W_O``), every ``MLP{l}``
(``hook_mlp_out``), neurons ``L{l}N{i}`` when a claim names them (``hook_post`` times the
neuron's ``W_out`` row), and ``bias``: every attention output bias ``b_O`` (which
TransformerLens's ``stack_head_results`` leaves out of the heads), the final norm's bias and the
unembedding bias. The components other than neurons sum to the model's own logit difference.
TransformerLens parameter and hook names are required.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import announce
from interp_assert.evaluate.logit_readout import (
    FINAL_NORMS,
    UNEMBEDS,
    answer_logit_diff,
    find,
    has_module_named,
    host_copy,
    lens_logits,
    no_norm,
    read,
    readout_sink,
)
from interp_assert.loading.data import DatasetSpec

NEURON = re.compile(r"L(\d+)N(\d+)$")
HEAD = re.compile(r"L(\d+)H(\d+)$")
MLP = re.compile(r"MLP(\d+)$")
#: blocks planned for a claim that reads every component, before the model is known: a model
#: with more blocks reads the others in a pass of their own
PLAN_LAYERS = 48
#: the final residual: the final norm's input, else (no norm module) the unembedding's
FINAL = (("ln_final", True), ("unembed", True))
COMPONENTS_HINT = "components: embed, pos_embed, L{l}H{h}, MLP{l}, L{l}N{i}, bias"


@dataclass
class Attribution:
    """Per-sample direct logit attributions: ``values[i, j]`` of component ``labels[j]``."""

    labels: list[str]
    values: np.ndarray
    #: the model's logit difference per sample (the sum of every component but neurons)
    total: np.ndarray

    def column(self, label: str) -> np.ndarray:
        return self.values[:, self.labels.index(label)]


def component_hook(label: str) -> str | None:
    """The hook a component is read from (None: ``bias``, read from the weights)."""
    if label in ("embed", "pos_embed"):
        return f"hook_{label}"
    if label == "bias":
        return None
    if m := HEAD.match(label):
        return f"blocks.{m.group(1)}.attn.hook_z"
    if m := MLP.match(label):
        return f"blocks.{m.group(1)}.hook_mlp_out"
    if m := NEURON.match(label):
        return f"blocks.{m.group(1)}.mlp.hook_post"
    raise QuantityError(f"'{label}' is not a component of the decomposition",
                        hint=COMPONENTS_HINT)


def _every_hook(layers: int) -> list[str]:
    hooks = ["hook_embed", "hook_pos_embed"]
    for layer in range(layers):
        hooks += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
    return hooks


def planned(spec: DatasetSpec, answer: str | None, contrast: str | None, labels: list[str],
            every: bool) -> list[tuple[Hashable, Callable[[], Any]]]:
    """(key, factory) of the sinks an attribution reads, without the model (for the plan):
    the final residual and the named components, or every component of up to
    :data:`PLAN_LAYERS` blocks."""
    hooks = [(hook, False) for label in labels if (hook := component_hook(label))]
    named = dict.fromkeys([*FINAL, *hooks])
    guessed = [(hook, False) for hook in _every_hook(PLAN_LAYERS) if (hook, False) not in named]
    planned = [readout_sink(spec, hook, answer, contrast, read_input)
               for hook, read_input in named]
    return planned + [(key, _optional(make)) for key, make in
                      (readout_sink(spec, hook, answer, contrast, False)
                       for hook, _ in (guessed if every else ()))]


def _optional(make: Callable[[], Any]) -> Callable[[], Any]:
    """A factory of sinks the pass skips quietly where the model lacks their hook (the plan
    guesses up to :data:`PLAN_LAYERS` blocks before the model is loaded)."""

    def made() -> Any:
        sink = make()
        sink.optional = True
        return sink

    return made


def shape_from_names(names: list[str]) -> tuple[int, bool]:
    """(layers, whether blocks have MLPs) from TransformerLens weight names."""
    layers = {int(m.group(1)) for n in names if (m := re.match(r"blocks\.(\d+)\.attn\.W_O$", n))}
    if not layers:
        raise QuantityError("direct logit attribution needs TransformerLens weight names "
                            "(blocks.{l}.attn.W_O)", hint="load the model with TransformerLens "
                                                          "names (examples.tiny_transformer)")
    return max(layers) + 1, any(n.endswith(".mlp.W_out") for n in names)


def attribute(ctx: Any, spec: DatasetSpec, answer: str | None, contrast: str | None,
              labels: list[str], every: bool = False) -> Attribution:
    """The attribution of ``labels`` (with ``every``: of every component, then ``labels``'
    neurons) on the claim's dataset, read in the pass the plan shares."""
    subject, model = ctx.subject, ctx.subject.model
    layers, mlp = shape_from_names(subject.weight_names())
    if every:
        heads = _weight(subject, "blocks.0.attn.W_O").shape[0]
        wanted = ["embed", "pos_embed"]
        for layer in range(layers):
            wanted += [f"L{layer}H{h}" for h in range(heads)] + ([f"MLP{layer}"] if mlp else [])
        wanted += ["bias", *(label for label in labels if NEURON.match(label))]
    else:
        wanted = list(labels)
    for label in wanted:
        _check(label, layers, mlp)
    final_hook = "ln_final" if has_module_named(model, "ln_final") else "unembed"
    hooks = [(final_hook, True), *dict.fromkeys(
        (hook, False) for label in wanted if (hook := component_hook(label)))]
    for hook, read_input in hooks:  # every sink in one pass, even where the plan missed it
        key, make = readout_sink(spec, hook, answer, contrast, read_input)
        announce(ctx.plan, subject, spec, key, make, ctx.interventions)
    base = _base(ctx, spec, answer, contrast, final_hook)
    got = {hook: read(ctx, spec, hook, answer, contrast) for hook, read_input in hooks[1:]}
    as_float: dict[str, np.ndarray] = {}
    columns = []
    for label in wanted:  # computed once per pass result, however many claims read it
        hook = component_hook(label)
        source = got[hook] if hook else base
        key = ("attribution-column", spec, ctx.interventions, answer, contrast, label)
        known = subject.cache.get(key)
        if known is None or known[0] is not source or known[1] is not base:
            if hook is not None and hook not in as_float:
                as_float[hook] = got[hook]["values"].astype(np.float64)
            column = _column(subject, label, as_float.get(hook), base, layers)
            known = subject.cache[key] = (source, base, column)
        columns.append(known[2])
    return Attribution(wanted, np.stack(columns, axis=1), base.total)


@dataclass
class _Base:
    """What every component's column reads: the answers and contrasts, the model's logit
    difference, the unembedding's direction per sample and the read direction through the
    frozen final norm."""

    answers: np.ndarray
    contrasts: np.ndarray | None
    total: np.ndarray
    direction: np.ndarray
    read_dir: np.ndarray
    norm_bias: np.ndarray
    b_u: np.ndarray


def _base(ctx: Any, spec: DatasetSpec, answer: str | None, contrast: str | None,
          final_hook: str) -> _Base:
    """The shared part of an attribution at one answer position, computed once per result of
    the pass (kept in the subject's cache beside it, and recomputed if the pass's result is
    replaced, as when a pass cut short is read whole)."""
    subject, model = ctx.subject, ctx.subject.model
    key = ("attribution-base", spec, ctx.interventions, answer, contrast)
    final = read(ctx, spec, final_hook, answer, contrast, True)
    known = subject.cache.get(key)
    if known is not None and known[0] is final:  # the same pass result (never a stale one)
        return known[1]
    answers, contrasts = final["answers"], final["contrasts"]
    residual = final["values"].astype(np.float64)
    w_u, b_u = _unembedding(model)
    if answers.min() < 0 or answers.max() >= w_u.shape[1] or (
            contrasts is not None and (contrasts.min() < 0 or contrasts.max() >= w_u.shape[1])):
        raise QuantityError(f"a token id is outside the vocabulary (0..{w_u.shape[1] - 1})")
    total = answer_logit_diff(lens_logits(model, residual), answers, contrasts)
    direction = w_u[:, answers].T - (w_u[:, contrasts].T if contrasts is not None
                                     else w_u.mean(axis=1)[None, :])
    center, weight, norm_bias, scale = _frozen_norm(model, residual)
    read_dir = direction * weight[None, :]
    if center:  # (x - mean x) . u == x . (u - mean u)
        read_dir = read_dir - read_dir.mean(axis=1, keepdims=True)
    read_dir = read_dir / scale[:, None]
    base = _Base(answers, contrasts, total, direction, read_dir, norm_bias, b_u)
    subject.cache[key] = (final, base)
    return base


def _check(label: str, layers: int, mlp: bool) -> None:
    """An error for a component the model lacks (a layer past the last, an MLP in an
    attention-only model)."""
    component_hook(label)
    m = HEAD.match(label) or MLP.match(label) or NEURON.match(label)
    if m is not None and (int(m.group(1)) >= layers or (not mlp and not HEAD.match(label))):
        raise QuantityError(f"'{label}' is not a component of this model ({layers} blocks"
                            f"{'' if mlp else ', attention only'})", hint=COMPONENTS_HINT)


def _column(subject: Any, label: str, vectors: np.ndarray | None, base: _Base,
            layers: int) -> np.ndarray:
    """One component's attribution per sample."""
    read_dir = base.read_dir
    if label == "bias":
        b_u, contrasts = base.b_u, base.contrasts
        bias = b_u[base.answers] - (b_u[contrasts] if contrasts is not None else b_u.mean())
        bias = bias + base.direction @ base.norm_bias
        for layer in range(layers):
            if subject.has_weight(f"blocks.{layer}.attn.b_O"):
                bias = bias + read_dir @ _weight(subject, f"blocks.{layer}.attn.b_O")
        return bias
    assert vectors is not None
    if m := HEAD.match(label):
        layer, head = int(m.group(1)), int(m.group(2))
        if head >= vectors.shape[1]:
            raise QuantityError(f"'{label}': layer {layer} has {vectors.shape[1]} heads")
        w_o = _weight(subject, f"blocks.{layer}.attn.W_O")[head]
        # the head's write (BLAS matmul), then each sample's dot with its read direction
        return np.einsum("nm,nm->n", vectors[:, head] @ w_o, read_dir)
    if m := NEURON.match(label):
        layer, index = int(m.group(1)), int(m.group(2))
        if index >= vectors.shape[1]:
            raise QuantityError(f"'{label}': layer {layer} has {vectors.shape[1]} neurons")
        w_out = _weight(subject, f"blocks.{layer}.mlp.W_out")[index]
        return vectors[:, index] * (read_dir @ w_out)
    return np.einsum("nd,nd->n", vectors, read_dir)


def _weight(subject: Any, name: str) -> np.ndarray:
    value = subject.weight(name)
    return (value.detach().cpu().double().numpy() if hasattr(value, "detach")
            else np.asarray(value, dtype=np.float64))


def _unembedding(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(W_U [d_model, vocab], b_U [vocab]) of the model's unembedding module."""
    module = find(model, UNEMBEDS, "unembedding")
    if hasattr(module, "W_U"):
        w_u = module.W_U.detach().double().cpu().numpy()
    else:
        w_u = module.weight.detach().double().cpu().numpy().T
    bias = getattr(module, "b_U", getattr(module, "bias", None))
    b_u = (bias.detach().double().cpu().numpy() if bias is not None
           else np.zeros(w_u.shape[1]))
    return w_u, b_u


def _frozen_norm(model: Any, final: np.ndarray
                 ) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """(centres, weight, bias, per-sample scale) of the final norm at the final residual,
    checked against the module itself: ``norm(x) == P(x) / scale * weight + bias``."""
    import torch

    width = final.shape[1]
    if no_norm(model):
        return False, np.ones(width), np.zeros(width), np.ones(len(final))
    module = find(model, FINAL_NORMS, "final norm")
    kind = type(module).__name__
    if kind == "Identity":
        return False, np.ones(width), np.zeros(width), np.ones(len(final))
    center = "rms" not in kind.lower()
    weight = getattr(module, "w", getattr(module, "weight", None))
    bias = getattr(module, "b", getattr(module, "bias", None))
    eps = float(getattr(module, "eps", getattr(module, "variance_epsilon", 1e-5)))
    weight = np.ones(width) if weight is None else weight.detach().double().cpu().numpy()
    bias = np.zeros(width) if bias is None else bias.detach().double().cpu().numpy()
    x = final - final.mean(axis=1, keepdims=True) if center else final
    scale = np.sqrt(np.mean(x**2, axis=1) + eps)
    with torch.inference_mode():
        own = host_copy(module)(torch.from_numpy(final)).numpy()
    mine = x / scale[:, None] * weight + bias
    if not np.allclose(own, mine, rtol=1e-6, atol=1e-6):
        raise QuantityError(f"the final norm ({kind}) is not a LayerNorm or RMSNorm whose "
                            "scale can be frozen (its output differs from "
                            "P(x) / scale * w + b)",
                            hint="direct logit attribution supports LayerNorm, RMSNorm and no "
                                 "final norm")
    return center, weight, bias, scale
