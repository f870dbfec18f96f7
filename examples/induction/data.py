"""Data for the induction-head example model.

Each sequence is a random prefix followed by a random segment repeated until the
sequence is full::

    p_0 .. p_{k-1}  s_0 .. s_{P-1}  s_0 .. s_{P-1}  s_0 ..

The prefix length ``k`` is drawn from ``[0, MAX_PREFIX]`` and the period ``P``
from ``[MIN_PERIOD, MAX_PERIOD]`` per sequence; all ``k + P`` distinct tokens are
sampled without replacement, so every repeated token has a unique earlier
occurrence and its successor is determined by induction. Random periods matter:
with a fixed period a model can predict from position alone instead of forming
an induction head.
"""

from __future__ import annotations

import torch

__all__ = ["D_VOCAB", "MAX_PERIOD", "MAX_PREFIX", "MIN_PERIOD", "SEQ_LEN", "generate"]

D_VOCAB = 64
"""Vocabulary size."""

SEQ_LEN = 48
"""Tokens per sequence."""

MIN_PERIOD = 6
"""Smallest repeat period (inclusive)."""

MAX_PERIOD = 16
"""Largest repeat period (inclusive)."""

MAX_PREFIX = 8
"""Longest random non-repeating prefix (inclusive)."""


def generate(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Generate ``n`` repeated-segment sequences deterministically from ``seed``.

    Args:
        n: Number of sequences.
        seed: Seed for a private ``torch.Generator``; the global RNG is untouched.

    Returns:
        ``tokens``: int64 ``[n, SEQ_LEN]``;
        ``repeated``: bool ``[n, SEQ_LEN]``, True where the token already occurred
        earlier in the sequence (so the *next* token is predictable by induction:
        it is the token that followed the earlier occurrence);
        ``period``: int64 ``[n]``; ``prefix_len``: int64 ``[n]``.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    gen = torch.Generator().manual_seed(seed)
    period = torch.randint(MIN_PERIOD, MAX_PERIOD + 1, (n,), generator=gen)
    prefix_len = torch.randint(0, MAX_PREFIX + 1, (n,), generator=gen)
    # One random permutation of the vocabulary per row supplies distinct tokens.
    perm = torch.rand(n, D_VOCAB, generator=gen).argsort(dim=1)
    pos = torch.arange(SEQ_LEN).unsqueeze(0)
    k = prefix_len.unsqueeze(1)
    p = period.unsqueeze(1)
    # Prefix positions index perm[:, pos]; segment positions index perm[:, k + (pos - k) % P].
    source = torch.where(pos < k, pos, k + (pos - k).remainder(p))
    tokens = perm.gather(1, source)
    repeated = pos >= k + p
    return {"tokens": tokens, "repeated": repeated, "period": period, "prefix_len": prefix_len}
