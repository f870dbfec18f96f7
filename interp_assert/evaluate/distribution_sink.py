"""The sink of a ``distribution:`` quantity: per-channel statistics streamed batch by batch
(:class:`~interp_assert.evaluate.streaming.StreamingStats`), with or without the raw samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.evaluate.forward import Sink, _to_numpy
from interp_assert.evaluate.streaming import NOT_KEPT, StreamingStats


class DistributionSink(Sink):
    """Streams per-channel statistics of an activation pooled over all but its last axis."""

    def __init__(self, hook: str, read_input: bool = False, bins: int = 1024,
                 thresholds: Sequence[float] = (), keep_samples: bool = True) -> None:
        self.hook, self.read_input = hook, read_input
        self.bins, self.thresholds = bins, tuple(thresholds)
        self.keep_samples = keep_samples
        self.stats: StreamingStats | None = None

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        array = _to_numpy(value)
        if self.stats is None:
            self.stats = StreamingStats(array.shape[-1], self.bins, self.thresholds,
                                        keep_samples=self.keep_samples)
            if not self.keep_samples:
                self.stats.dropped = NOT_KEPT
        self.stats.update(array.reshape(-1, array.shape[-1]))
        # consecutive rows of one sample (its positions): the unit a bootstrap resamples
        rows = int(np.prod(array.shape[1:-1])) if array.ndim > 2 else 1
        seen = getattr(self.stats, "unit_rows", rows)
        self.stats.unit_rows = rows if seen == rows else 1  # type: ignore[attr-defined]

    def result(self) -> StreamingStats:
        assert self.stats is not None
        return self.stats

    def bytes_needed(self, seen: int, total: int) -> int:
        if self.stats is None:
            return 0
        return self.stats.counts.nbytes + self.stats.below.nbytes  # fixed: does not grow


@dataclass(frozen=True)
class DistributionFactory:
    """Makes a :class:`DistributionSink`; the plan asks for one that keeps no raw samples
    (:meth:`without_samples`) when no claim reading it needs them, so that its memory does
    not grow with the samples."""

    hook: str
    read_input: bool = False
    bins: int = 1024
    thresholds: tuple[float, ...] = ()
    keeps_samples: bool = True

    def __call__(self) -> DistributionSink:
        return DistributionSink(self.hook, self.read_input, self.bins, self.thresholds,
                                self.keeps_samples)

    def without_samples(self) -> DistributionFactory:
        return DistributionFactory(self.hook, self.read_input, self.bins, self.thresholds,
                                   False)


__all__ = ["DistributionFactory", "DistributionSink"]
