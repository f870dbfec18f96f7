"""Analyses of the 10-digit addition model.

* :func:`operand_attention` — per head, mean attention from the position that
  predicts answer digit ``A_i`` (``"="`` for ``A0``, ``A{i-1}`` otherwise) to the
  operand digits ``X_i`` and ``Y_i`` (the digits being added) and to ``X_{i-1}``
  and ``Y_{i-1}`` (the digits that decide the carry into ``A_i``).
* :func:`operand_head` — the head with the largest such attention, for either
  role (``"sum"`` or ``"carry"``).
* :func:`digit_value_vectors` and :func:`av_readout` — a rank-1 "A·V" readout of
  how a head carries digit value, see :func:`av_readout`.
* :func:`error_rates` — exact-match, per-answer-digit error rates and error
  rates split by incoming carry.
"""

from __future__ import annotations

import numpy as np
import torch

from examples.adder.data import (
    ANSWER_DIGITS,
    ANSWER_QUERY_POSITIONS,
    ANSWER_TOKEN_POSITIONS,
    N_DIGITS,
    generate,
    position_index,
)
from examples.tiny_transformer import LayerNorm, TinyTransformer, attention_patterns

__all__ = [
    "OPERAND_POSITIONS",
    "av_readout",
    "digit_value_vectors",
    "error_rates",
    "operand_attention",
    "operand_head",
]

EVAL_SEED = 1234
"""Seed of the default evaluation set."""

OPERAND_POSITIONS: list[int] = [position_index(f"X{i}") for i in range(N_DIGITS)] + [
    position_index(f"Y{i}") for i in range(N_DIGITS)
]
"""Sequence indices of the 20 operand digits ``X0..X9, Y0..Y9``."""


def operand_attention(
    model: TinyTransformer, tokens: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Mean attention from answer-predicting positions to operand digits.

    For the query predicting ``A_i`` the keys are ``X_i``/``Y_i`` (means over
    ``i = 0..9``) and ``X_{i-1}``/``Y_{i-1}`` (means over ``i = 1..10``); the
    means also run over examples (default: ``generate(500, 1234)``).

    Returns:
        ``to_x``, ``to_y``, ``to_both`` (``to_x + to_y``), ``to_prev_x``,
        ``to_prev_y`` and ``to_prev_both``, each ``[n_layers, n_heads]``.
    """
    if tokens is None:
        tokens = generate(500, EVAL_SEED)["tokens"]
    same = torch.tensor(ANSWER_QUERY_POSITIONS[:N_DIGITS])
    prev = torch.tensor(ANSWER_QUERY_POSITIONS[1:])
    x_keys = torch.tensor([position_index(f"X{i}") for i in range(N_DIGITS)])
    y_keys = torch.tensor([position_index(f"Y{i}") for i in range(N_DIGITS)])
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("to_x", "to_y", "to_prev_x", "to_prev_y")}
    for pattern in attention_patterns(model, tokens):
        out["to_x"].append(pattern[:, :, same, x_keys].mean((0, 2)))
        out["to_y"].append(pattern[:, :, same, y_keys].mean((0, 2)))
        out["to_prev_x"].append(pattern[:, :, prev, x_keys].mean((0, 2)))
        out["to_prev_y"].append(pattern[:, :, prev, y_keys].mean((0, 2)))
    result = {k: torch.stack(v) for k, v in out.items()}
    result["to_both"] = result["to_x"] + result["to_y"]
    result["to_prev_both"] = result["to_prev_x"] + result["to_prev_y"]
    return result


def operand_head(
    model: TinyTransformer, role: str = "sum", tokens: torch.Tensor | None = None
) -> tuple[int, int]:
    """``(layer, head)`` that best reads the operand digits for ``role``.

    ``role="sum"``: largest mean attention to ``X_i`` plus ``Y_i`` from the
    position predicting ``A_i``. ``role="carry"``: largest mean attention to
    ``X_{i-1}`` plus ``Y_{i-1}``.
    """
    key = {"sum": "to_both", "carry": "to_prev_both"}.get(role)
    if key is None:
        raise ValueError(f"role must be 'sum' or 'carry', got {role!r}")
    scores = operand_attention(model, tokens)[key]
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    return layer, head


@torch.no_grad()
def digit_value_vectors(model: TinyTransformer, layer: int, head: int) -> torch.Tensor:
    """What ``(layer, head)`` writes when it attends to a digit token, ``[10, d_model]``.

    Row ``d`` is ``ln1(W_E[d] + W_pos[p]) @ W_V[head] @ W_O[head]`` averaged over
    the 20 operand positions ``p`` (LayerNorm applied exactly as the model does
    at layer 0). For a head in a later layer the embedding is only the direct
    path of the residual stream at the key position; the bias terms
    ``b_V @ W_O`` are common to all digits and omitted.
    """
    attn = model.blocks[layer].attn
    ln1 = model.blocks[layer].ln1
    resid = model.embed.W_E[:10, None, :] + model.pos_embed.W_pos[None, OPERAND_POSITIONS, :]
    normed = ln1(resid) if isinstance(ln1, LayerNorm) else resid
    out = normed @ attn.W_V[head] @ attn.W_O[head]  # [10, positions, d_model]
    return out.mean(1)


def av_readout(
    model: TinyTransformer,
    layer: int | None = None,
    head: int | None = None,
    role: str = "carry",
) -> np.ndarray:
    """Rank-1 "A·V" readout of digit value through an operand-reading head, shape ``[10]``.

    Takes the ten digit value-output vectors of :func:`digit_value_vectors`,
    centres them across digits, and projects each centred vector onto the top
    right-singular vector of the centred ``[10, d_model]`` stack: the single
    residual direction that explains most of the variation in what the head
    writes for different digits. The sign is fixed so that
    ``readout[9] > readout[0]``.

    The head defaults to :func:`operand_head` for ``role`` — by default the
    *carry* head, which attends from the position predicting ``A_i`` to
    ``X_{i-1}`` and ``Y_{i-1}``. In the bundled model that head writes digit
    magnitude along one dominant direction and the readout is monotone in the
    digit. The *sum* heads (``role="sum"``, attending to ``X_i`` and ``Y_i``)
    encode digits on a roughly period-5 circle spread over several directions,
    so their rank-1 readout is not monotone.
    """
    if layer is None or head is None:
        layer, head = operand_head(model, role)
    vectors = digit_value_vectors(model, layer, head).double()
    centred = vectors - vectors.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    readout = centred @ vh[0]
    if readout[9] < readout[0]:
        readout = -readout
    return readout.cpu().numpy()


@torch.no_grad()
def error_rates(model: TinyTransformer, n: int = 2000, seed: int = EVAL_SEED) -> dict[str, object]:
    """Teacher-forced greedy error analysis on ``generate(n, seed)``.

    Returns:
        ``exact``: fraction of examples with all 11 answer digits right;
        ``digit_error``: ``[11]`` error rate of each answer digit ``A0..A10``;
        ``carry_error``: ``[11, 2]`` error rate of each digit split by the carry
        into it (``NaN`` where a split is empty, e.g. carry 1 into ``A0``);
        ``carry_count``: ``[11, 2]`` number of examples in each split.
    """
    batch = generate(n, seed)
    tokens = batch["tokens"]
    logits = model(tokens)[:, ANSWER_QUERY_POSITIONS]
    wrong = logits.argmax(-1) != tokens[:, ANSWER_TOKEN_POSITIONS]
    carry = batch["carry"]
    carry_error = np.full((ANSWER_DIGITS, 2), np.nan)
    carry_count = np.zeros((ANSWER_DIGITS, 2), dtype=np.int64)
    for i in range(ANSWER_DIGITS):
        for c in (0, 1):
            mask = carry[:, i] == c
            carry_count[i, c] = int(mask.sum())
            if carry_count[i, c]:
                carry_error[i, c] = wrong[mask, i].float().mean().item()
    return {
        "exact": (~wrong.any(1)).float().mean().item(),
        "digit_error": wrong.float().mean(0).cpu().numpy(),
        "carry_error": carry_error,
        "carry_count": carry_count,
    }
