"""Measurements of the induction circuit in the 2-layer attention-only model.

* :func:`prev_token_scores` — per head, mean attention from each query position
  ``t >= 1`` to ``t - 1``.
* :func:`induction_scores` — per head, mean attention from each position ``t``
  whose next token is repeated to ``t - period + 1`` (the token after the previous
  occurrence of the current token).
* :func:`k_composition_scores` — Elhage et al.'s K-composition between every
  layer-0 head (writer) and layer-1 head (reader).
* :func:`split_losses` — mean next-token loss on repeated tokens vs first
  occurrences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from examples.induction.data import generate
from examples.tiny_transformer import TinyTransformer, attention_patterns

__all__ = [
    "attention_patterns",
    "induction_scores",
    "k_composition_scores",
    "prev_token_scores",
    "split_losses",
]

EVAL_SEED = 1234
"""Default seed of the evaluation sequences."""


def _eval_batch(batch: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    return batch if batch is not None else generate(1000, EVAL_SEED)


def prev_token_scores(
    model: TinyTransformer, batch: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Mean attention to the previous position, ``[n_layers, n_heads]``.

    Averaged over all sequences and query positions ``t >= 1``.
    """
    batch = _eval_batch(batch)
    patterns = attention_patterns(model, batch["tokens"])
    return torch.stack([p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2)) for p in patterns])


def induction_scores(
    model: TinyTransformer, batch: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Mean attention from repeated positions to the induction target, ``[n_layers, n_heads]``.

    For each query ``t`` whose next token is repeated (``repeated[t + 1]``; its own
    token occurred at ``t - period``) the induction target is key position
    ``t - period + 1``. Averaged over all such queries of all sequences.
    """
    batch = _eval_batch(batch)
    patterns = attention_patterns(model, batch["tokens"])
    rows, targets = batch["repeated"].nonzero(as_tuple=True)
    queries = targets - 1
    keys = queries - batch["period"][rows] + 1
    return torch.stack([p[rows, :, queries, keys].mean(0) for p in patterns])


@torch.no_grad()
def split_losses(
    model: TinyTransformer, batch: dict[str, torch.Tensor] | None = None
) -> dict[str, float]:
    """Mean next-token loss on repeated tokens, on first occurrences, and overall.

    Position ``t`` (``t < SEQ_LEN - 1``) predicts token ``t + 1``; it counts as
    repeated when the token it predicts is (``batch["repeated"][t + 1]``).
    """
    batch = _eval_batch(batch)
    tokens = batch["tokens"]
    logits = model(tokens)[:, :-1]
    losses = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    repeated = batch["repeated"][:, 1:]
    return {
        "repeated": losses[repeated].mean().item(),
        "first": losses[~repeated].mean().item(),
        "all": losses.mean().item(),
    }


@torch.no_grad()
def k_composition_scores(model: TinyTransformer, writer: int = 0, reader: int = 1) -> torch.Tensor:
    """K-composition scores ``[n_heads(writer), n_heads(reader)]``.

    In TransformerLens's row-vector layout, head ``h1`` of layer ``writer`` has
    ``W_OV = W_V[h1] @ W_O[h1]`` and head ``h2`` of layer ``reader`` has
    ``W_QK = W_Q[h2] @ W_K[h2].T``; the key side of ``h2`` reads ``h1``'s output
    through ``W_QK @ W_OV.T``, so the score is
    ``||W_OV @ W_QK.T||_F / (||W_OV||_F ||W_QK||_F)``. This equals Elhage et
    al.'s ``||W_QK W_OV||_F / (...)`` in their column-vector convention and
    TransformerLens's ``all_composition_scores("K")``.
    """
    a1 = model.blocks[writer].attn
    a2 = model.blocks[reader].attn
    w_ov = a1.W_V @ a1.W_O  # [h1, d_model, d_model]
    w_qk = a2.W_Q @ a2.W_K.transpose(-2, -1)  # [h2, d_model, d_model]
    comp = w_ov[:, None] @ w_qk[None].transpose(-2, -1)
    norms = torch.linalg.matrix_norm(w_ov)[:, None] * torch.linalg.matrix_norm(w_qk)[None]
    return torch.linalg.matrix_norm(comp) / norms
