"""Attention scores in plain numpy: target keys per (sample, query) (relative and induction
targets), padding masks, and per-head weights pooled over (sample, query) pairs.

Patterns are (batch, head, query, key) arrays; targets are key indices with -1 for none.
"""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError


def induction_targets(tokens: np.ndarray) -> np.ndarray:
    """Key ``j + 1`` per (sample, query ``q``), ``j < q`` the latest earlier position with the
    same token; -1 where there is none, or where ``j + 1 == q`` (that would be ``itself``)."""
    n, length = tokens.shape
    out = np.full((n, length), -1, dtype=np.int64)
    for q in range(1, length):
        same = tokens[:, :q] == tokens[:, q:q + 1]
        target = q - np.argmax(same[:, ::-1], axis=1)  # (latest j) + 1
        out[:, q] = np.where(same.any(axis=1) & (target != q), target, -1)
    return out


def relative_targets(relative: str, n_query: int, tokens: np.ndarray | None = None
                     ) -> np.ndarray:
    """Target key per (sample, query), -1 where none; shape (1, Q) unless token-dependent.

    Query 0 has no previous, first or itself target: under causal masking all its weight is
    forced onto itself. The next token is ``q + 1`` for every query but the last position.
    """
    if relative == "induction":
        if tokens is None:
            raise QuantityError("the induction target needs the input tokens")
        return induction_targets(tokens)
    q = np.arange(n_query)
    if relative == "next":
        return np.where(q + 1 < n_query, q + 1, -1)[None, :]
    keys = {"previous": q - 1, "first": np.zeros_like(q), "itself": q}[relative]
    return np.where(q >= 1, keys, -1)[None, :]


def mask_targets(targets: np.ndarray, mask: np.ndarray | None, n: int) -> np.ndarray:
    """(n, Q) targets with -1 where the query or its target key is padding (``mask`` (n, Q),
    True on real tokens)."""
    targets = np.broadcast_to(targets, (n, targets.shape[1]))
    if mask is None:
        return targets
    at_key = np.take_along_axis(mask, np.clip(targets, 0, mask.shape[1] - 1), axis=1)
    return np.where(mask & at_key & (targets >= 0), targets, -1)


def relative_scores(pattern: np.ndarray, targets: np.ndarray,
                    queries: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Mean weight on each (sample, query)'s target key, per head, over the pairs that have one
    (and that ``queries``, (n, Q) booleans, allows); ``pattern`` is (batch, head, query, key).
    Returns the per-head scores (NaN when no pair has a target) and the number of pairs."""
    n, _, n_query, _ = pattern.shape
    targets = np.broadcast_to(targets, (n, n_query))
    valid = targets >= 0
    if queries is not None:
        valid = valid & queries
    count = int(valid.sum())
    index = np.clip(targets, 0, None)[:, None, :, None]
    gathered = np.take_along_axis(pattern, np.broadcast_to(index, (*pattern.shape[:3], 1)),
                                  axis=3)[..., 0]
    total = np.where(valid[:, None, :], gathered, 0.0).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def key_scores(pattern: np.ndarray, selected: np.ndarray, pairs: np.ndarray
               ) -> tuple[np.ndarray, int]:
    """Mean summed weight on each sample's selected keys (``selected`` (n, K) booleans), per
    head, over the (sample, query) pairs in ``pairs`` ((n, Q) booleans). Returns the per-head
    scores (NaN when there is no pair) and the number of pairs."""
    count = int(pairs.sum())
    rows = np.flatnonzero(pairs.any(axis=0))  # only the queries that are used
    part = pattern[:, :, rows]
    summed = np.where(selected[:, None, None, :], part, 0.0).sum(axis=-1)  # (n, head, rows)
    total = np.where(pairs[:, None, rows], summed, 0.0).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def modal_targets(targets: np.ndarray, n_query: int) -> list[tuple[int, int]]:
    """(query, most frequent target key) for every query that has a target."""
    targets = np.broadcast_to(targets, (targets.shape[0], n_query))
    cells = []
    for q in range(n_query):
        column = targets[:, q]
        column = column[column >= 0]
        if column.size:
            cells.append((q, int(np.argmax(np.bincount(column)))))
    return cells


def masked_mean(pattern: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(head, query, key) batch mean over the samples where both query and key are real."""
    if mask is None:
        return pattern.mean(axis=0)
    both = (mask[:, :, None] & mask[:, None, :])[:, None]
    total = np.where(both, pattern, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / both.sum(axis=0)


def is_causal(values: np.ndarray) -> bool:
    """Whether a (batch, head, query, key) pattern puts no weight on any later key."""
    if values.shape[2] != values.shape[3] or values.shape[2] < 2:
        return False
    later = np.triu(np.ones(values.shape[2:], dtype=bool), 1)
    return not np.any(np.abs(values[..., later]) > 0)


__all__ = ["induction_targets", "is_causal", "key_scores", "mask_targets", "masked_mean",
           "modal_targets", "relative_scores", "relative_targets"]
