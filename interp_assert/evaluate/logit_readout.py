"""Reading activations at the position that predicts each sample's answer token: the sinks of
the logit lens and of direct logit attribution, and the model's own final norm and unembedding.

A claim names its *answer* by the position of the scored token (``at A3``: the token at A3,
predicted from the residual stream at the position before it), as the metrics' ``answer:``
positions do; with no position the answer is each sample's last token. A
:class:`ReadoutSink` keeps, per batch, only the hooked activation at that predicting position
and the answer's token id (and a contrast token's id, for a logit difference), so a pass keeps
``[n, d_model]`` numbers per hook, never whole activations. The arithmetic is in float64 on the
captured float32 activations. ``docs/definitions.md (Logit lens and direct logit attribution)``
has the formulas.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError, did_you_mean
from interp_assert.evaluate.forward import KeepingSink, request
from interp_assert.loading.data import DatasetSpec

#: module names tried, in order, for the final norm and the unembedding
FINAL_NORMS = ("ln_final", "transformer.ln_f", "model.norm", "gpt_neox.final_layer_norm")
UNEMBEDS = ("unembed", "lm_head", "embed_out")


def resid_hook(where: str) -> str:
    """The hook a lens reads: ``blocks.1`` means ``blocks.1.hook_resid_post``."""
    return f"{where}.hook_resid_post" if re.fullmatch(r"blocks\.\d+", where) else where


class ReadoutSink(KeepingSink):
    """Keeps ``hook``'s value at the position predicting each sample's answer token, the
    answer's id and, with ``contrast``, the id in that dataset field."""

    def __init__(self, hook: str, target: int | None, input_field: str,
                 contrast: str | None, read_input: bool = False) -> None:
        self.hook, self.target, self.input_field, self.contrast = hook, target, input_field, \
            contrast
        self.read_input = read_input
        self.parts: list[np.ndarray] = []
        self.answers: list[np.ndarray] = []
        self.contrasts: list[np.ndarray] = []

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        if isinstance(value, tuple | list):
            value = value[0]
        tokens = np.asarray(_host(batch[self.input_field]))
        target = tokens.shape[1] - 1 if self.target is None else self.target
        if target < 1:
            raise QuantityError("the answer token is the first of the sequence: no position "
                                "before it predicts it", hint="name a later answer position")
        self.parts.append(value[:, target - 1].detach().float().cpu().numpy())
        self.answers.append(tokens[:, target].astype(np.int64))
        if self.contrast is not None:
            if self.contrast not in batch:
                raise QuantityError(f"the dataset has no field '{self.contrast}' (the token to "
                                    "compare the answer with)" + did_you_mean(self.contrast,
                                                                              batch),
                                    hint="name a field holding one token id per sample")
            other = np.asarray(_host(batch[self.contrast]))
            if other.ndim == 2 and other.shape[1] == tokens.shape[1]:
                other = other[:, target]
            self.contrasts.append(other.reshape(len(tokens), -1)[:, 0].astype(np.int64))

    def result(self) -> dict[str, np.ndarray | None]:
        return {"values": np.concatenate(self.parts, axis=0),
                "answers": np.concatenate(self.answers),
                "contrasts": np.concatenate(self.contrasts) if self.contrast else None}

    def release(self) -> None:
        self.parts, self.answers, self.contrasts = [], [], []


def _host(value: Any) -> Any:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def readout_sink(spec: DatasetSpec, hook: str, answer: str | None, contrast: str | None,
                 read_input: bool = False) -> tuple[Hashable, Callable[[], ReadoutSink]]:
    """(key, factory) of the sink reading ``hook`` (its input with ``read_input``) for the
    answer at position ``answer``."""
    def make() -> ReadoutSink:
        target = None
        if answer is not None:
            if spec.positions is None:
                raise QuantityError(f"'at {answer}' names a position, but dataset "
                                    f"'{spec.name}' has no 'positions:'",
                                    hint="add 'positions: ...' to the dataset")
            if answer not in spec.positions:
                raise QuantityError(f"dataset '{spec.name}' has no position '{answer}'"
                                    + did_you_mean(answer, spec.positions))
            target = spec.positions.index(answer)
        return ReadoutSink(hook, target, spec.input, contrast, read_input)

    return ("readout", hook, answer, spec.input, contrast, read_input), make


def read(ctx: Any, spec: DatasetSpec, hook: str, answer: str | None,
         contrast: str | None, read_input: bool = False) -> dict[str, Any]:
    """The planned sink's result on the claim's evaluation (one shared pass)."""
    key, make = readout_sink(spec, hook, answer, contrast, read_input)
    return request(ctx.plan, ctx.subject, spec, key, make, ctx.interventions)


def find(model: Any, names: tuple[str, ...], what: str) -> Any:
    """The first of ``names`` that is a submodule of ``model``."""
    for name in names:
        try:
            return model.get_submodule(name)
        except AttributeError:
            continue
    raise QuantityError(f"the model has no {what} module (looked for "
                        f"{', '.join(names)})",
                        hint="the logit lens reads the model's own final norm and unembedding "
                             "under TransformerLens or Hugging Face names")


def lens_logits(model: Any, resid: np.ndarray) -> np.ndarray:
    """``unembed(final_norm(resid))`` in float64 through copies of the model's own modules."""
    import torch

    norm = find(model, FINAL_NORMS, "final norm") if not no_norm(model) else None
    unembed = find(model, UNEMBEDS, "unembedding")
    x = torch.from_numpy(np.asarray(resid, dtype=np.float64))
    with torch.inference_mode():
        if norm is not None:
            x = host_copy(norm)(x)
        return host_copy(unembed)(x).numpy()


def host_copy(module: Any) -> Any:
    """A float64 copy of ``module`` on the CPU (the model itself is left as it is)."""
    import torch

    return copy.deepcopy(module).to(device="cpu", dtype=torch.float64)


def no_norm(model: Any) -> bool:
    """A TransformerLens-style model without normalisation has no ``ln_final`` at all."""
    cfg = getattr(model, "cfg", None)
    kind = getattr(cfg, "normalization", getattr(cfg, "normalization_type", "LN"))
    return kind is None and not any(has_module_named(model, n) for n in FINAL_NORMS)


def has_module_named(model: Any, name: str) -> bool:
    """Whether ``name`` is a submodule of ``model``."""
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def answer_logit_diff(logits: np.ndarray, answers: np.ndarray,
                      contrasts: np.ndarray | None) -> np.ndarray:
    """logit[answer] minus logit[contrast], or minus the mean logit with no contrast."""
    rows = np.arange(len(answers))
    other = logits[rows, contrasts] if contrasts is not None else logits.mean(axis=1)
    return logits[rows, answers] - other


def lens_statistic(logits: np.ndarray, answers: np.ndarray, contrasts: np.ndarray | None,
                   stat: str) -> np.ndarray:
    """Per sample: the answer's ``probability``, ``rank`` (1 = top; ties share the better
    rank), ``logit`` or ``logit-diff``; NaN wherever a logit is not finite."""
    vocab = logits.shape[1]
    for ids, what in ((answers, "answer"), (contrasts, "contrast")):
        if ids is not None and (ids.min() < 0 or ids.max() >= vocab):
            raise QuantityError(f"a {what} token id is outside the vocabulary (0..{vocab - 1})")
    rows = np.arange(len(answers))
    bad = ~np.all(np.isfinite(logits), axis=1)
    picked = logits[rows, answers]
    if stat == "probability":
        top = logits.max(axis=1, keepdims=True)
        exp = np.exp(logits - top)
        value = exp[rows, answers] / exp.sum(axis=1)
    elif stat == "rank":
        value = 1.0 + np.sum(logits > picked[:, None], axis=1)
    elif stat == "logit":
        value = picked.astype(np.float64)
    else:
        value = answer_logit_diff(logits, answers, contrasts)
    return np.where(bad, np.nan, value)


def layer_hooks(model: Any) -> list[tuple[str, str]]:
    """(label, hook) of every residual stream a lens can read, in order: for TransformerLens
    names ``embed`` (the input of block 0) and each ``blocks.{l}``'s output; for a model whose
    blocks are ``transformer.h`` (GPT-2, nanoGPT) each block's output."""
    if has_module_named(model, "transformer.h"):
        count = len(model.get_submodule("transformer.h"))
        return [(f"transformer.h.{layer}", f"transformer.h.{layer}") for layer in range(count)]
    cfg = getattr(model, "cfg", None)
    layers = getattr(cfg, "n_layers", None)
    if layers is None:
        blocks = getattr(model, "blocks", None)
        layers = len(blocks) if blocks is not None else 0
    return ([("embed", "blocks.0.hook_resid_pre")]
            + [(f"blocks.{layer}", f"blocks.{layer}.hook_resid_post") for layer in range(layers)])
