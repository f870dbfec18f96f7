"""Clean and corrupted induction data for activation patching.

``generate(n, seed, corrupt=True)`` replaces the first copy of each sequence's repeated
segment with tokens the sequence does not use, keeping every later token and the ``repeated``
mask: the second copy can then no longer be predicted by induction from the first, while the
third still can from the second. Clean and corrupted sets with the same seed are aligned
sample by sample.
"""

from __future__ import annotations

import torch

from .data import D_VOCAB
from .data import generate as repeats


def generate(n: int, seed: int, corrupt: bool = False) -> dict[str, torch.Tensor]:
    """Repeated-segment sequences; with ``corrupt`` the first copy is replaced."""
    data = repeats(n=n, seed=seed)
    if not corrupt:
        return data
    tokens = data["tokens"].clone()
    gen = torch.Generator().manual_seed(seed + 1)
    for row in range(n):
        start, period = int(data["offset"][row]), int(data["period"][row])
        used = set(tokens[row].tolist())
        unused = torch.tensor([t for t in range(D_VOCAB) if t not in used])
        tokens[row, start:start + period] = unused[torch.randperm(len(unused), generator=gen)[
            :period]]
    data["tokens"] = tokens
    return data
