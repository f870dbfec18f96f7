"""The adder's addition problems with per-token fields for feature claims.

:func:`generate` returns :func:`examples.adder.data.generate`'s fields plus ``carry_in``
(int64 ``[n, 33]``): at each position, the carry into the answer digit predicted there
(position ``"="`` predicts A0, ``A{i-1}`` predicts ``A{i}``); 0 at positions that predict
no answer digit.
"""

from __future__ import annotations

import torch

from examples.adder.data import ANSWER_QUERY_POSITIONS, SEQ_LEN
from examples.adder.data import generate as generate_sums


def generate(n: int, seed: int) -> dict[str, torch.Tensor]:
    """The problems of ``generate_sums(n, seed)`` with the ``carry_in`` field."""
    data = generate_sums(n, seed)
    carry_in = torch.zeros(n, SEQ_LEN, dtype=torch.int64)
    carry_in[:, ANSWER_QUERY_POSITIONS] = data["carry"]
    return {**data, "carry_in": carry_in}
