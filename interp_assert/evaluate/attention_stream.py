"""Attention patterns reduced as they stream: what a positional attention claim reads of a
(batch, head, query, key) pattern, kept batch by batch instead of the pattern itself.

For a positional relative target (previous, next, first token, itself) the scores of
:func:`~interp_assert.evaluate.attention_scores.set_scores` read the pattern only on the
target's cells ``(q, k)``, the batch mean that reports and plots show is a (head, query, key)
sum, and the causal check is one flag per head. :class:`PatternSummarySink` keeps exactly
these: per sample the weights on the target's cells (float32, ``n·H·Q`` values instead of
``n·H·Q·K``), the (head, query, key) float64 sum over samples (over the samples where both
query and key are real, with a padding mask), added sample after sample as numpy's batch mean
adds them, and whether any weight lies on a later key. The pattern a claim then reads
(:meth:`PatternSummary.values`) holds the kept weights on their cells and zeros elsewhere:
the scores, which never read another cell, are the very numbers the whole pattern gives.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from interp_assert.evaluate.forward import Sink, _to_numpy

POSITIONAL = ("previous", "next", "first", "itself")
"""The relative targets whose cells do not depend on the sample."""

MASK_FIELD = "attention_mask"


def target_cells(relative: str, n_query: int, n_key: int) -> tuple[np.ndarray, np.ndarray]:
    """(query, key) indices of the cells of a positional target, in row-major order."""
    q = np.arange(n_query)
    k = {"previous": q - 1, "next": q + 1, "itself": q, "first": np.zeros_like(q)}[relative]
    inside = (k >= 0) & (k < n_key)
    return q[inside], k[inside]


@dataclass
class PatternSummary:
    """What a streamed pattern keeps: see the module docstring."""

    hook: str
    relative: str
    #: (n, H, cells) float32: each sample's weights on the target's cells
    cell_values: np.ndarray
    cells: tuple[np.ndarray, np.ndarray]
    #: (H, Q, K) float64 sum over samples (masked: over samples where query and key are real)
    total: np.ndarray
    #: (Q, K) samples summed into ``total`` at each cell (None without a mask: all of them)
    counted: np.ndarray | None
    #: (H,) whether any weight lies on a later key
    later: np.ndarray
    n_query: int
    n_key: int
    masked: bool = False

    @property
    def n(self) -> int:
        return int(self.cell_values.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(batch, head, query, key) of the pattern it summarises."""
        return (self.n, int(self.total.shape[0]), self.n_query, self.n_key)

    def values(self, head: int) -> np.ndarray:
        """(n, 1, Q, K) float32: head ``head``'s weights on the target's cells, zeros
        elsewhere."""
        out = np.zeros((self.n, 1, self.n_query, self.n_key), dtype=self.cell_values.dtype)
        out[:, 0, self.cells[0], self.cells[1]] = self.cell_values[:, head]
        return out

    def mean(self, head: int) -> np.ndarray:
        """(1, Q, K) batch mean of head ``head`` (as ``attention_scores.masked_mean``)."""
        if self.counted is None:
            return self.total[head:head + 1] / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total[head:head + 1] / self.counted

    def causal(self, head: int) -> bool:
        """``attention_scores.is_causal`` of head ``head``'s pattern."""
        if self.n_query != self.n_key or self.n_query < 2:
            return False
        return not bool(self.later[head])


    def state(self) -> dict[str, Any]:
        """Its fields by name (what the result cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class PatternSummarySink(Sink):
    """Streams a pattern hook into a :class:`PatternSummary` for one positional target."""

    def __init__(self, hook: str, relative: str) -> None:
        if relative not in POSITIONAL:
            raise ValueError(relative)
        self.hook, self.relative = hook, relative
        self.parts: list[np.ndarray] = []
        self.total: np.ndarray | None = None
        self.counted: np.ndarray | None = None
        self.later: np.ndarray | None = None
        self.cells: tuple[np.ndarray, np.ndarray] | None = None
        self.masked = False
        self.shape: tuple[int, int] = (0, 0)

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        array = _to_numpy(value)
        if array.ndim != 4:
            raise ValueError(f"a pattern has (batch, head, query, key) axes; got shape "
                             f"{array.shape}")
        n, heads, n_query, n_key = array.shape
        mask = batch.get(MASK_FIELD)
        if self.total is None:
            self.shape = (n_query, n_key)
            self.cells = target_cells(self.relative, n_query, n_key)
            self.total = np.zeros((heads, n_query, n_key))
            self.later = np.zeros(heads, dtype=bool)
            mask_shape = None if mask is None else tuple(mask.shape)
            self.masked = mask_shape == (n, n_query) and n_query == n_key
            if self.masked:
                self.counted = np.zeros((n_query, n_key), dtype=np.int64)
        assert self.cells is not None and self.later is not None
        self.parts.append(array[:, :, self.cells[0], self.cells[1]].copy())
        if self.masked:
            real = _numpy(mask).astype(bool)
            both = real[:, :, None] & real[:, None, :]
            for b in range(n):
                self.total += np.where(both[b][None], array[b], 0.0)
            assert self.counted is not None
            self.counted += both.sum(axis=0)
        else:
            for b in range(n):
                self.total += array[b]
        if n_query == n_key and n_query >= 2:
            later = np.triu(np.ones((n_query, n_key), dtype=bool), 1)
            self.later |= np.any(np.abs(array[..., later]) > 0, axis=(0, 2))

    def bytes_needed(self, seen: int, total: int) -> int:
        kept = sum(part.nbytes for part in self.parts)
        fixed = 0 if self.total is None else self.total.nbytes
        return 2 * kept * total // max(seen, 1) + fixed

    def result(self) -> PatternSummary:
        assert self.total is not None and self.cells is not None and self.later is not None
        values = np.concatenate(self.parts, axis=0)
        return PatternSummary(self.hook, self.relative, values, self.cells, self.total,
                              self.counted if self.masked else None, self.later,
                              self.shape[0], self.shape[1], self.masked)

    def release(self) -> None:
        self.parts = []


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


__all__ = ["POSITIONAL", "PatternSummary", "PatternSummarySink", "target_cells"]
