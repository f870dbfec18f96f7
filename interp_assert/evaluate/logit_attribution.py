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
    find,
    host_copy,
    no_norm,
    read,
    readout_sink,
)
from interp_assert.loading.data import DatasetSpec

NEURON = re.compile(r"L(\d+)N(\d+)$")


@dataclass
class Attribution:
    """Per-sample direct logit attributions: ``values[i, j]`` of component ``labels[j]``."""

    labels: list[str]
    values: np.ndarray
    #: the model's logit difference per sample (the sum of every component but neurons)
    total: np.ndarray

    def column(self, label: str) -> np.ndarray:
        return self.values[:, self.labels.index(label)]


def component_hooks(layers: int, mlp: bool, neurons: list[str]) -> list[str]:
    """Every hook an attribution reads: embeddings, heads, MLPs, neurons, the final residual."""
    hooks = ["hook_embed", "hook_pos_embed"]
    for layer in range(layers):
        hooks.append(f"blocks.{layer}.attn.hook_z")
        if mlp:
            hooks.append(f"blocks.{layer}.hook_mlp_out")
    hooks += sorted({f"blocks.{m.group(1)}.mlp.hook_post" for n in neurons
                     if (m := NEURON.match(n))})
    hooks.append(f"blocks.{layers - 1}.hook_resid_post")
    return hooks


def shape_from_names(names: list[str]) -> tuple[int, bool]:
    """(layers, whether blocks have MLPs) from TransformerLens weight names."""
    layers = {int(m.group(1)) for n in names if (m := re.match(r"blocks\.(\d+)\.attn\.W_O$", n))}
    if not layers:
        raise QuantityError("direct logit attribution needs TransformerLens weight names "
                            "(blocks.{l}.attn.W_O)", hint="load the model with TransformerLens "
                                                          "names (examples.tiny_transformer)")
    return max(layers) + 1, any(n.endswith(".mlp.W_out") for n in names)


def planned(spec: DatasetSpec, names: list[str], answer: str | None, contrast: str | None,
            neurons: list[str]) -> list[tuple[Hashable, Callable[[], Any]]]:
    """(key, factory) of every sink an attribution reads (for the plan)."""
    layers, mlp = shape_from_names(names)
    return [readout_sink(spec, hook, answer, contrast)
            for hook in component_hooks(layers, mlp, neurons)]


def attribute(ctx: Any, spec: DatasetSpec, answer: str | None, contrast: str | None,
              neurons: list[str]) -> Attribution:
    """The attribution of every component on the claim's dataset (one shared pass)."""
    subject, model = ctx.subject, ctx.subject.model
    layers, mlp = shape_from_names(subject.weight_names())
    hooks = component_hooks(layers, mlp, neurons)
    for hook in hooks:  # every sink in one pass, even where the plan did not know them
        key, make = readout_sink(spec, hook, answer, contrast)
        announce(ctx.plan, subject, spec, key, make, ctx.interventions)
    got = {hook: read(ctx, spec, hook, answer, contrast) for hook in hooks}
    final = got[hooks[-1]]
    answers, contrasts = final["answers"], final["contrasts"]
    w_u, b_u = _unembedding(model)
    if answers.min() < 0 or answers.max() >= w_u.shape[1] or (
            contrasts is not None and (contrasts.min() < 0 or contrasts.max() >= w_u.shape[1])):
        raise QuantityError(f"a token id is outside the vocabulary (0..{w_u.shape[1] - 1})")
    direction = w_u[:, answers].T - (w_u[:, contrasts].T if contrasts is not None
                                     else w_u.mean(axis=1)[None, :])
    bias = b_u[answers] - (b_u[contrasts] if contrasts is not None else b_u.mean())
    center, weight, norm_bias, scale = _frozen_norm(model, final["values"].astype(np.float64))
    read_dir = direction * weight[None, :]
    if center:  # (x - mean x) . u == x . (u - mean u)
        read_dir = read_dir - read_dir.mean(axis=1, keepdims=True)
    read_dir = read_dir / scale[:, None]
    bias = bias + direction @ norm_bias

    def project(vectors: np.ndarray) -> np.ndarray:
        return np.einsum("nd,nd->n", vectors.astype(np.float64), read_dir)

    labels, columns = ["embed", "pos_embed"], [project(got["hook_embed"]["values"]),
                                               project(got["hook_pos_embed"]["values"])]
    for layer in range(layers):
        z = got[f"blocks.{layer}.attn.hook_z"]["values"].astype(np.float64)
        w_o = _weight(subject, f"blocks.{layer}.attn.W_O")
        heads = np.einsum("nhd,hdm,nm->nh", z, w_o, read_dir)
        labels += [f"L{layer}H{h}" for h in range(heads.shape[1])]
        columns += list(heads.T)
        if subject.has_weight(f"blocks.{layer}.attn.b_O"):
            bias = bias + read_dir @ _weight(subject, f"blocks.{layer}.attn.b_O")
        if mlp:
            labels.append(f"MLP{layer}")
            columns.append(project(got[f"blocks.{layer}.hook_mlp_out"]["values"]))
    labels.append("bias")
    columns.append(bias)
    total = np.sum(columns, axis=0)
    for name in neurons:
        m = NEURON.match(name)
        assert m is not None
        layer, index = int(m.group(1)), int(m.group(2))
        post = got[f"blocks.{layer}.mlp.hook_post"]["values"].astype(np.float64)
        if index >= post.shape[1]:
            raise QuantityError(f"'{name}': layer {layer} has {post.shape[1]} neurons")
        w_out = _weight(subject, f"blocks.{layer}.mlp.W_out")[index]
        labels.append(name)
        columns.append(post[:, index] * (read_dir @ w_out))
    return Attribution(labels, np.stack(columns, axis=1), total)


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
