"""Check callables of ``for all`` claims about the adder.

``adds_correctly(model, a, b)`` runs the model teacher-forced on ``a + b`` (one forward pass;
all 11 answer digits right teacher-forced is the same as greedy decoding right) and returns
``(ok, per-position details)`` for the counterexample plot. ``adds_correctly.batch`` checks
lists of operands at once (used by exhaustive claims).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from examples.adder.data import (
    ANSWER_DIGITS,
    ANSWER_QUERY_POSITIONS,
    EQUALS,
    N_DIGITS,
    PLUS,
)


def _digits(values: torch.Tensor, n: int) -> torch.Tensor:
    powers = 10 ** torch.arange(n, dtype=torch.int64)
    return (values.unsqueeze(1) // powers) % 10


def tokens_for(a: Sequence[int], b: Sequence[int]) -> torch.Tensor:
    """``[n, 33]`` sequences ``X0..X9 + Y0..Y9 = A0..A10`` of the true sums."""
    left = torch.tensor(list(a), dtype=torch.int64)
    right = torch.tensor(list(b), dtype=torch.int64)
    n = len(left)
    return torch.cat([_digits(left, N_DIGITS), torch.full((n, 1), PLUS),
                      _digits(right, N_DIGITS), torch.full((n, 1), EQUALS),
                      _digits(left + right, ANSWER_DIGITS)], dim=1)


@torch.no_grad()
def _predict(model: Any, a: Sequence[int], b: Sequence[int]) -> tuple[torch.Tensor, ...]:
    tokens = tokens_for(a, b)
    device = next(model.parameters()).device
    logits = model(tokens.to(device)).cpu()[:, ANSWER_QUERY_POSITIONS, :10]
    probs = logits.softmax(-1)
    answer = tokens[:, -ANSWER_DIGITS:]
    return logits.argmax(-1), answer, probs.gather(-1, answer.unsqueeze(-1)).squeeze(-1)


def adds_correctly(model: Any, a: int, b: int) -> tuple[bool, dict[str, list[Any]]]:
    """All 11 answer digits of ``a + b`` predicted right; details per answer digit."""
    if not (0 <= a < 10**N_DIGITS and 0 <= b < 10**N_DIGITS):
        raise ValueError(f"operands must have at most {N_DIGITS} digits")
    predicted, answer, p_right = _predict(model, [a], [b])
    details = {"positions": [f"A{i}" for i in range(ANSWER_DIGITS)],
               "expected digit": answer[0].tolist(), "predicted digit": predicted[0].tolist(),
               "p(correct digit)": [round(float(p), 4) for p in p_right[0]]}
    return bool((predicted == answer).all()), details


def _batch(model: Any, a: Sequence[int], b: Sequence[int]) -> list[bool]:
    predicted, answer, _ = _predict(model, a, b)
    return (predicted == answer).all(-1).tolist()


adds_correctly.batch = _batch  # type: ignore[attr-defined]
