"""Ablating a transcoder's features.

A transcoder reads the MLP input at its ``hook_name`` (``x_in``) and predicts the MLP output at
``hook_name_out``. Ablating features ``S`` keeps the real MLP output and removes only their
decoded share, with activations encoded from the same pass's MLP input:

``y ← y − Σ_{i∈S} f_i(x_in) · W_dec[i]``

Two interventions do it: one at the input hook records ``x_in`` (its output is unchanged), one
at the output hook encodes the recorded ``x_in`` and edits ``y``. The input hook runs first in
every forward pass, so the second always finds the first's batch.
"""

from __future__ import annotations

from typing import Any

from interp_assert.errors import QuantityError
from interp_assert.evaluate.feature_interventions import _edit
from interp_assert.evaluate.feature_sink import check_width, encode_torch
from interp_assert.evaluate.forward import Intervention
from interp_assert.loading.dictionary import SparseDictionary


def transcoder_ablation(dictionary: SparseDictionary, hook_in: str, hook_out: str,
                        features: tuple[int, ...], positions: tuple[int, ...] | None
                        ) -> tuple[Intervention, Intervention]:
    """The (record, edit) pair that removes ``f_i(x_in) · W_dec[i]`` from ``hook_out``."""
    if hook_in == hook_out:
        raise QuantityError(f"{dictionary.describe()}: its input and output hooks are both "
                            f"'{hook_in}'",
                            hint="a transcoder's hook_name_out names the MLP output hook")
    recorded: dict[str, Any] = {}

    def record(output: Any, batch: dict[str, Any]) -> Any:
        tensor = output[0] if isinstance(output, tuple | list) else output
        check_width(dictionary, hook_in, tuple(tensor.shape))
        recorded["x_in"] = tensor.detach()
        return output

    def edit(output: Any, batch: dict[str, Any]) -> Any:
        tensor = output[0] if isinstance(output, tuple | list) else output
        x_in = recorded.pop("x_in", None)
        if x_in is None:
            raise QuantityError(f"{dictionary.describe()}: the output hook '{hook_out}' ran "
                                f"before the input hook '{hook_in}' in the pass",
                                hint="hook_name must be the MLP input and hook_name_out its "
                                     "output, in the same block")
        d_out = int(dictionary.W_dec.shape[1])
        if tensor.shape[-1] != d_out or tuple(tensor.shape[:-1]) != tuple(x_in.shape[:-1]):
            raise QuantityError(f"{dictionary.describe()}: hook '{hook_out}' gives shape "
                                f"{tuple(tensor.shape)}, but the input hook gave "
                                f"{tuple(x_in.shape)} and the decoder writes {d_out}",
                                hint="point hook_name_out at the output the transcoder "
                                     "predicts")
        f = encode_torch(dictionary, x_in)[..., list(features)]
        w_dec = dictionary.tensors(tensor.device, f.dtype)["W_dec"][list(features)]
        return _edit(output, -(f @ w_dec), positions)

    base = (str(dictionary.path), dictionary.digest, hook_in, hook_out, features, positions)
    return (Intervention(hook_in, ("transcoder-read", *base), record),
            Intervention(hook_out, ("transcoder-ablate", *base), edit))
