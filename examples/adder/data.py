"""Data for the 10-digit addition model.

Each example is one 33-token sequence, digits written least-significant first so
that carries flow in the causal direction::

    X0 .. X9  +  Y0 .. Y9  =  A0 .. A10

``X0`` is the units digit of the first operand ``a``, ``Y0`` the units digit of
``b`` and ``A0 .. A10`` the 11 digits of ``a + b`` (``A10`` is the final carry).
Tokens ``0``-``9`` are digits, ``10`` is ``+`` and ``11`` is ``=``; no BOS or pad
token is used. The logits at position ``p`` predict token ``p + 1``, so the
answer digits ``A0 .. A10`` are predicted at positions ``"=" .. "A9"``
(:data:`ANSWER_QUERY_POSITIONS`).
"""

from __future__ import annotations

import torch

__all__ = [
    "ANSWER_DIGITS",
    "ANSWER_QUERY_POSITIONS",
    "ANSWER_TOKEN_POSITIONS",
    "D_VOCAB",
    "EQUALS",
    "N_DIGITS",
    "PLUS",
    "POSITIONS",
    "SEQ_LEN",
    "generate",
    "position_index",
]

N_DIGITS = 10
"""Digits per operand."""

ANSWER_DIGITS = N_DIGITS + 1
"""Digits of the sum (one more than the operands, for the final carry)."""

PLUS = 10
"""Token id of ``+``."""

EQUALS = 11
"""Token id of ``=``."""

D_VOCAB = 12
"""Vocabulary size: digits 0-9, ``+`` and ``=``."""

POSITIONS: list[str] = (
    [f"X{i}" for i in range(N_DIGITS)]
    + ["+"]
    + [f"Y{i}" for i in range(N_DIGITS)]
    + ["="]
    + [f"A{i}" for i in range(ANSWER_DIGITS)]
)
"""Label of every sequence position, index-aligned with ``tokens``."""

SEQ_LEN = len(POSITIONS)
"""Sequence length (33)."""

ANSWER_TOKEN_POSITIONS: list[int] = [POSITIONS.index(f"A{i}") for i in range(ANSWER_DIGITS)]
"""Indices of the answer tokens ``A0 .. A10`` (22 .. 32)."""

ANSWER_QUERY_POSITIONS: list[int] = [p - 1 for p in ANSWER_TOKEN_POSITIONS]
"""Indices whose logits predict ``A0 .. A10`` (``"="`` .. ``"A9"``, i.e. 21 .. 31)."""


def position_index(label: str) -> int:
    """Return the sequence index of a position label such as ``"X3"`` or ``"="``."""
    return POSITIONS.index(label)


def _digits_lsb_first(values: torch.Tensor, n: int) -> torch.Tensor:
    """Return ``[len(values), n]`` decimal digits of ``values``, least significant first."""
    powers = 10 ** torch.arange(n, dtype=torch.int64)
    return (values.unsqueeze(1) // powers) % 10


def generate(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Generate ``n`` addition problems deterministically from ``seed``.

    Both operands are uniform over ``[0, 10**10)`` (each digit uniform and
    independent), so about half of the answer digits A1 .. A10 receive a carry.

    Args:
        n: Number of examples.
        seed: Seed for a private ``torch.Generator``; the global RNG is untouched.

    Returns:
        ``tokens``: int64 ``[n, 33]`` full sequences including the answer;
        ``a``, ``b``: int64 ``[n]`` operands; ``sum``: int64 ``[n]`` ``a + b``;
        ``carry``: int64 ``[n, 11]``, ``carry[:, i]`` is the carry *into* answer
        digit ``A_i`` (always 0 for ``A0``).
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (n, N_DIGITS), generator=gen)
    y = torch.randint(0, 10, (n, N_DIGITS), generator=gen)
    powers = 10 ** torch.arange(N_DIGITS, dtype=torch.int64)
    a = (x * powers).sum(1)
    b = (y * powers).sum(1)
    total = a + b
    answer = _digits_lsb_first(total, ANSWER_DIGITS)
    carry = torch.zeros(n, ANSWER_DIGITS, dtype=torch.int64)
    for i in range(1, ANSWER_DIGITS):
        carry[:, i] = (x[:, i - 1] + y[:, i - 1] + carry[:, i - 1]) // 10
    plus = torch.full((n, 1), PLUS, dtype=torch.int64)
    equals = torch.full((n, 1), EQUALS, dtype=torch.int64)
    tokens = torch.cat([x, plus, y, equals, answer], dim=1)
    return {"tokens": tokens, "a": a, "b": b, "sum": total, "carry": carry}
