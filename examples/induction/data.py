"""Data for the induction-head example model.

Each sequence holds a random segment of period ``P`` written three times in a
row, surrounded by random filler::

    f_0 .. f_{k-1}  s_0 .. s_{P-1}  s_0 .. s_{P-1}  s_0 .. s_{P-1}  f_k .. f_{T-3P-1}

The period ``P`` is drawn from ``[MIN_PERIOD, MAX_PERIOD]`` and the offset ``k``
from ``[0, T - 3P]`` per sequence. The ``P`` segment tokens are distinct; filler
tokens are uniform over the vocabulary (with replacement, so they may
coincide with segment tokens). Inside the second and third copies every token's
most recent earlier occurrence is exactly ``P`` positions back, and the token
after it is the next token: predictable by induction. Random periods and offsets
matter: with a fixed layout a model can predict from position alone instead of
forming an induction head. Filler makes first occurrences carry no copying
signal either way, and three copies (rather than two) give enough repeated
positions for the induction head to form quickly.
"""

from __future__ import annotations

import torch

__all__ = ["COPIES", "D_VOCAB", "MAX_PERIOD", "MIN_PERIOD", "SEQ_LEN", "generate"]

D_VOCAB = 64
"""Vocabulary size."""

SEQ_LEN = 48
"""Tokens per sequence."""

MIN_PERIOD = 6
"""Smallest segment length (inclusive)."""

MAX_PERIOD = 16
"""Largest segment length (inclusive); ``COPIES * MAX_PERIOD <= SEQ_LEN``."""

COPIES = 3
"""Consecutive copies of the segment in each sequence."""


def generate(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Generate ``n`` sequences with a repeated segment, deterministically from ``seed``.

    Args:
        n: Number of sequences.
        seed: Seed for a private ``torch.Generator``; the global RNG is untouched.

    Returns:
        ``tokens``: int64 ``[n, SEQ_LEN]``;
        ``repeated``: bool ``[n, SEQ_LEN]``, True at the tokens predictable by
        induction: positions ``t`` of the second and third copies except the first
        token of the second copy, i.e. ``offset + period < t < offset + 3 * period``
        (the token at ``t - 1`` last occurred at ``t - 1 - period``, and
        ``tokens[t] == tokens[t - period]``). The mask marks the *scored tokens*,
        the convention of interp-assert's ``mask:`` option: the logits at ``t - 1``
        predict the token at ``t``, so a next-token loss on ``repeated`` reads the
        logits at ``t - 1`` (``train.py`` uses ``repeated[:, 1:]``);
        ``period``: int64 ``[n]``; ``offset``: int64 ``[n]``, start of the first copy.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    gen = torch.Generator().manual_seed(seed)
    period = torch.randint(MIN_PERIOD, MAX_PERIOD + 1, (n,), generator=gen)
    # Offset uniform on [0, SEQ_LEN - COPIES * period]: a uniform draw scaled per row.
    offset = (torch.rand(n, generator=gen) * (SEQ_LEN - COPIES * period + 1)).long()
    # One random permutation of the vocabulary per row gives distinct segment tokens.
    perm = torch.rand(n, D_VOCAB, generator=gen).argsort(dim=1)
    filler = torch.randint(0, D_VOCAB, (n, SEQ_LEN), generator=gen)
    pos = torch.arange(SEQ_LEN).unsqueeze(0)
    k = offset.unsqueeze(1)
    p = period.unsqueeze(1)
    end = k + COPIES * p
    in_segment = (pos >= k) & (pos < end)
    segment = perm.gather(1, (pos - k).clamp(min=0).remainder(p))
    tokens = torch.where(in_segment, segment, filler)
    repeated = (pos > k + p) & (pos < end)
    return {"tokens": tokens, "repeated": repeated, "period": period, "offset": offset}
