"""Attention scores in plain numpy: the target key set of every (sample, query) pair, padding
masks, and per-head weights pooled over (sample, query) pairs.

Patterns are (batch, head, query, key) arrays. A target is a key set: (n, Q, K) booleans
(``keys[b, q, k]``: key ``k`` is a target of query ``q`` in sample ``b``; the first axis may be
1 when the targets do not depend on the sample). A pair (b, q) counts when its key set is not
empty. The score of a head is the mean, over the counted pairs of every sample pooled
together, of the summed weight on the pair's target keys::

    score[h] = sum_{(b, q) counted} sum_{k in keys[b, q]} A[b, h, q, k] / #counted

Relative targets (``docs/definitions.md``, "Metrics and attention", has each one's query and
key sets), with ``Q`` the number of positions:

* ``previous``: {q - 1} for queries 1 .. Q-1;
* ``next``: {q + 1} for queries 0 .. Q-2;
* ``first``: {0} for every query, query 0 included;
* ``itself``: {q} for every query, query 0 included;
* ``induction``: {j + 1 : j < q - 1, token[j] == token[q]}, the successors of every earlier
  occurrence of the query's token (the standard induction score), for the queries that have
  one; a successor that is the query itself (j = q - 1) is not a target;
* ``induction_latest``: {j* + 1}, j* the latest earlier occurrence, for the queries that have
  one, unless j* + 1 == q (then the query has no target).

In causal and bidirectional models alike: a causal query 0 puts all its weight on itself, and it
counts for ``itself`` and ``first`` as every other query does.
"""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError

RELATIVE_KINDS = ("previous", "next", "first", "itself", "induction", "induction_latest")
"""The relative targets :func:`relative_keys` knows."""

TOKEN_KINDS = frozenset({"induction", "induction_latest"})
"""The relative targets that depend on the input tokens."""


def induction_keys(tokens: np.ndarray, mask: np.ndarray | None = None, latest: bool = False
                   ) -> np.ndarray:
    """(n, Q, Q) key sets of the induction target: for each (sample, query ``q``) the keys
    ``j + 1`` with ``j < q - 1`` and ``tokens[j] == tokens[q]`` (every earlier occurrence), or
    with ``latest`` only the latest earlier occurrence ``j*``, and none when ``j* + 1 == q``.
    Occurrences on padding (``mask`` False) do not count."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise QuantityError(f"the induction target needs (batch, position) tokens; got shape "
                            f"{tokens.shape}")
    n, length = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, j]
    if mask is not None:
        same &= mask[:, :, None] & mask[:, None, :]
    q, j = np.arange(length)[:, None], np.arange(length)[None, :]
    keys = np.zeros((n, length, length), dtype=bool)
    if not latest:
        keys[:, :, 1:] = (same & (j < q - 1))[:, :, :-1]
        return keys
    earlier = same & (j < q)
    latest_j = length - 1 - np.argmax(earlier[:, :, ::-1], axis=2)  # [b, q]
    has = earlier.any(axis=2) & (latest_j + 1 != np.arange(length)[None, :])
    b_idx, q_idx = np.nonzero(has)
    keys[b_idx, q_idx, latest_j[b_idx, q_idx] + 1] = True
    return keys


def relative_keys(relative: str, n_query: int, n_key: int, tokens: np.ndarray | None = None,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """Key sets of a relative target, (1, Q, K) for positional targets and (n, Q, K) for the
    token-dependent ones (the induction targets, which need ``tokens``)."""
    if relative not in RELATIVE_KINDS:
        raise QuantityError(f"unknown relative attention target '{relative}'",
                            hint="known: " + ", ".join(RELATIVE_KINDS))
    if relative in TOKEN_KINDS:
        if tokens is None:
            raise QuantityError("the induction target needs the input tokens")
        keys = induction_keys(tokens, mask, latest=relative == "induction_latest")
        if keys.shape[1:] != (n_query, n_key):
            raise QuantityError(f"the tokens give {keys.shape[1]} positions but the pattern "
                                f"has {n_query} queries and {n_key} keys")
        return keys
    q = np.arange(n_query)[:, None]
    k = np.arange(n_key)[None, :]
    offset = {"previous": q - 1, "next": q + 1, "itself": q, "first": np.zeros_like(q)}
    return (k == offset[relative])[None]


def mask_keys(keys: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Key sets without padded queries and padded keys (``mask`` (n, Q), True on real tokens;
    the pattern is square when there is a mask)."""
    if mask is None:
        return keys
    return keys & mask[:, :, None] & mask[:, None, :]


def set_scores(pattern: np.ndarray, keys: np.ndarray, queries: np.ndarray | None = None
               ) -> tuple[np.ndarray, int]:
    """Per-head mean, over the (sample, query) pairs with a non-empty key set (and that
    ``queries``, (n, Q) booleans, allows), of the summed weight on the pair's keys; ``pattern``
    (batch, head, query, key), ``keys`` (n or 1, Q, K). Returns the per-head scores (NaN when
    no pair counts) and the number of pairs. Weights outside the key sets are never read."""
    n, heads, n_query, n_key = pattern.shape
    keys = np.broadcast_to(keys, (n, n_query, n_key))
    pairs = keys.any(axis=2)
    if queries is not None:
        pairs = pairs & queries
    count = int(pairs.sum())
    chosen = keys & pairs[:, :, None]
    total = np.array([np.where(chosen, pattern[:, h], 0.0).sum() for h in range(heads)],
                     dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def key_scores(pattern: np.ndarray, selected: np.ndarray, pairs: np.ndarray
               ) -> tuple[np.ndarray, int]:
    """Mean summed weight on each sample's selected keys (``selected`` (n, K) booleans), per
    head, over the (sample, query) pairs in ``pairs`` ((n, Q) booleans): :func:`set_scores`
    with the same key set for every query of a sample."""
    return set_scores(pattern, selected[:, None, :] & pairs[:, :, None], pairs)


def modal_targets(targets: np.ndarray, n_query: int) -> list[tuple[int, int]]:
    """(query, most frequent target key) for every query that has a target; ``targets`` are
    (n or 1, Q) key indices with -1 for none."""
    targets = np.broadcast_to(targets, (targets.shape[0], n_query))
    cells = []
    for q in range(n_query):
        column = targets[:, q]
        column = column[column >= 0]
        if column.size:
            cells.append((q, int(np.argmax(np.bincount(column)))))
    return cells


def modal_keys(keys: np.ndarray, pairs: np.ndarray) -> list[tuple[int, int]]:
    """(query, its most frequent target key over the samples) for every query that has a pair
    in ``pairs`` ((n, Q) booleans); ``keys`` (n or 1, Q, K)."""
    keys = np.broadcast_to(keys, (pairs.shape[0], *keys.shape[1:]))
    counts = (keys & pairs[:, :, None]).sum(axis=0)  # (Q, K)
    return [(int(q), int(np.argmax(counts[q]))) for q in np.flatnonzero(counts.any(axis=1))]


def masked_mean(pattern: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(head, query, key) batch mean over the samples where both query and key are real."""
    if mask is None:
        return pattern.mean(axis=0, dtype=np.float64)
    both = (mask[:, :, None] & mask[:, None, :])[:, None]
    total = np.where(both, pattern, 0.0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / both.sum(axis=0)


def is_causal(values: np.ndarray) -> bool:
    """Whether a (batch, head, query, key) pattern puts no weight on any later key."""
    if values.shape[2] != values.shape[3] or values.shape[2] < 2:
        return False
    later = np.triu(np.ones(values.shape[2:], dtype=bool), 1)
    return not np.any(np.abs(values[..., later]) > 0)


__all__ = ["RELATIVE_KINDS", "TOKEN_KINDS", "induction_keys", "is_causal", "key_scores",
           "mask_keys", "masked_mean", "modal_keys", "modal_targets", "relative_keys",
           "set_scores"]
