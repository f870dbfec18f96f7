"""Interventions on sparse-dictionary features at the dictionary's hook.

* ablation: ``x ← x − Σ_i f_i(x) · W_dec[i]`` (the features' share of the reconstruction is
  removed; the reconstruction error and every other feature stay), with ``f`` encoded from the
  hook's own activation in the same pass;
* steering: ``x ← x + s · Σ_i W_dec[i]``.

Both act on every position, or only on the given position indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp_assert.errors import QuantityError
from interp_assert.evaluate.feature_sink import check_width, encode_torch
from interp_assert.evaluate.forward import Intervention
from interp_assert.loading.dictionary import SparseDictionary


def feature_indices(dictionary: SparseDictionary, labels: Sequence[str]) -> tuple[int, ...]:
    """``F12`` → 12, checked against the dictionary's width."""
    out = []
    for label in labels:
        text = str(label)
        if not (text.startswith("F") and text[1:].isdigit()):
            raise QuantityError(f"'{text}' is not a feature label",
                                hint=f"name features F0..F{dictionary.d_sae - 1}")
        index = int(text[1:])
        if index >= dictionary.d_sae:
            raise QuantityError(f"{text}: {dictionary.describe()} has {dictionary.d_sae} "
                                f"features (F0..F{dictionary.d_sae - 1})",
                                hint=f"name features within F0..F{dictionary.d_sae - 1}")
        out.append(index)
    return tuple(out)


def _edit(output: Any, change: Any, positions: tuple[int, ...] | None) -> Any:
    tensor = output[0] if isinstance(output, tuple | list) else output
    new = tensor.clone()
    if positions is None:
        new += change.to(new.dtype)
    else:
        where = list(positions)
        if new.ndim != 3:
            raise QuantityError("positions need an activation of shape [batch, pos, d_in]")
        new[:, where] += change[:, where].to(new.dtype) if change.ndim == 3 else \
            change.to(new.dtype)
    if isinstance(output, tuple):
        return (new, *output[1:])
    return new


def feature_ablation(dictionary: SparseDictionary, hook: str, features: tuple[int, ...],
                     positions: tuple[int, ...] | None) -> Intervention:
    """Removes ``f_i(x) · W_dec[i]`` of each feature from the hook's output."""

    def apply(output: Any, batch: dict[str, Any]) -> Any:
        tensor = output[0] if isinstance(output, tuple | list) else output
        check_width(dictionary, hook, tuple(tensor.shape))
        f = encode_torch(dictionary, tensor.detach())[..., list(features)]
        w_dec = dictionary.tensors(tensor.device, f.dtype)["W_dec"][list(features)]
        return _edit(output, -(f @ w_dec), positions)

    key = ("feature-ablate", str(dictionary.path), dictionary.digest, hook, features, positions)
    return Intervention(hook, key, apply)


def feature_steering(dictionary: SparseDictionary, hook: str, features: tuple[int, ...],
                     scale: float, positions: tuple[int, ...] | None) -> Intervention:
    """Adds ``scale · W_dec[i]`` of each feature to the hook's output."""

    def apply(output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = output[0] if isinstance(output, tuple | list) else output
        check_width(dictionary, hook, tuple(tensor.shape))
        w_dec = dictionary.tensors(tensor.device, torch.float64)["W_dec"][list(features)]
        return _edit(output, scale * w_dec.sum(0), positions)

    key = ("feature-steer", str(dictionary.path), dictionary.digest, hook, features,
           float(scale), positions)
    return Intervention(hook, key, apply)
