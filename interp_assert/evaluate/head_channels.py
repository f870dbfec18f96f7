"""Distributions of activations whose last two axes are (head, d_head), as TransformerLens's
``hook_z``: one channel per (head, d_head) pair, pooled over batch and positions (the
channel of head ``h``, coordinate ``d`` is ``h * d_head + d``), and per-head distributions
pooled over a head's ``d_head`` coordinates as well, regrouped from the kept samples.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.distribution_sink import DistributionSink
from interp_assert.evaluate.forward import _to_numpy
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Labelled


class HeadChannelSink(DistributionSink):
    """Streams per-(head, d_head) statistics; its result is (stats, (heads, d_head))."""

    def __init__(self, hook: str, read_input: bool = False, bins: int = 1024,
                 thresholds: tuple[float, ...] = ()) -> None:
        super().__init__(hook, read_input, bins, thresholds)
        self.tail: tuple[int, int] | None = None

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        array = _to_numpy(value)
        if array.ndim < 3:
            raise QuantityError(f"'{self.hook}' has shape {tuple(array.shape)}, not "
                                "[..., head, d_head]", hint="use a hook whose output has a "
                                "head axis before its last, such as blocks.0.attn.hook_z")
        if self.stats is None:
            self.tail = (int(array.shape[-2]), int(array.shape[-1]))
            self.stats = StreamingStats(self.tail[0] * self.tail[1], self.bins, self.thresholds)
        self.stats.update(array.reshape(-1, self.stats.channels))

    def result(self) -> tuple[StreamingStats, tuple[int, int]]:  # type: ignore[override]
        assert self.stats is not None and self.tail is not None
        return self.stats, self.tail


def pooled_stats(stats: StreamingStats, shape: tuple[int, ...], axis: int,
                 shown: str) -> StreamingStats:
    """The statistics of the channels of ``stats`` (laid out as ``shape``, row-major) pooled
    over every axis but ``axis``: one channel per position along ``axis``, built from the
    kept raw samples (exact)."""
    key = (tuple(shape), axis)
    known = _POOLED.setdefault(stats, {})
    if key not in known:
        known[key] = _pool(stats, shape, axis, shown)
    return known[key]


#: pooled statistics already built, per source statistics (freed with them)
_POOLED: weakref.WeakKeyDictionary[StreamingStats, dict[Any, StreamingStats]] = (
    weakref.WeakKeyDictionary())


def _pool(stats: StreamingStats, shape: tuple[int, ...], axis: int, shown: str
          ) -> StreamingStats:
    samples = stats.samples()  # [channels, samples]
    if samples is None:
        raise QuantityError(f"'{shown}': a distribution per axis {axis} pools several channels, "
                            f"which needs their raw samples, but they were dropped "
                            f"({stats.dropped})", hint="raise the memory limit or use fewer "
                            "samples, or quantify over its channels ('every channel of ...')")
    grid = samples.reshape(*shape, samples.shape[-1])
    moved = np.moveaxis(grid, axis, 0).reshape(shape[axis], -1)  # [group, pooled samples]
    out = StreamingStats(shape[axis], stats.bins, stats.thresholds)
    chunk = max(1, (1 << 22) // max(shape[axis], 1))
    for start in range(0, moved.shape[1], chunk):
        out.update(np.ascontiguousarray(moved[:, start:start + chunk].T))
    return out


def grid_channels(value: Labelled, stats: StreamingStats, noun: str | None, shown: str
                  ) -> tuple[StreamingStats, list[str], str, str]:
    """The channels a claim quantifies over in a distribution whose channels form a grid
    (``value``'s axes, e.g. head × d_head): every grid cell when ``noun`` is None (labels
    ``L1H0[3]``), else the axis ``noun`` names, each of its positions one distribution pooled
    over the other axes (``every head of z``). Also returns a note for the report."""
    if noun is None:
        names = [value.labels_of(i) for i in range(value.ndim)]
        labels = [f"{cell[0]}" + "".join(f"[{c}]" for c in cell[1:])
                  for cell in itertools.product(*names)]
        return stats, labels, " × ".join(a.name for a in value.axes), ""
    for axis, ax in enumerate(value.axes):
        if ax.matches(noun):
            pooled = pooled_stats(stats, value.shape, axis, shown)
            others = " × ".join(a.name for i, a in enumerate(value.axes) if i != axis)
            note = (f"one distribution per {ax.name}: {int(pooled.n)} values each, its "
                    f"{value.values.size // value.shape[axis]} {others} channels pooled")
            return pooled, value.labels_of(axis), ax.name, note
    names = [a.name for a in value.axes]
    raise QuantityError(f"'{shown}' is a distribution per {' × '.join(names)}, which has no "
                        f"axis '{noun}' (axes: {', '.join(names)})",
                        hint=f"write 'every {names[0]} of {shown} ...' (one distribution per "
                             f"{names[0]}, pooled over its {', '.join(names[1:])}) or 'every "
                             f"channel of {shown} ...' (each {' × '.join(names)} cell)")


__all__ = ["HeadChannelSink", "grid_channels", "pooled_stats"]
