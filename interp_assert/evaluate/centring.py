"""Centred and rescaled distributions: ``mean_centred(x)``, ``peak_centred(x[, bins])``,
``mode(x[, bins])`` and ``layer_scaled(x)`` on distribution quantities.

Each returns a distribution quantity of the same channels whose samples are transformed per
channel (``docs/definitions.md``, "Centred distributions"):

* ``mean_centred``: ``y = x − mean_c`` (the mean of the channel's finite values);
* ``peak_centred``: ``y = x − mode_c``, the mode being the midpoint of the fullest of ``bins``
  (50 by default) equal-width bins spanning the channel's finite ``[min, max]``
  (``np.histogram(values, bins)``; the lowest of equally full bins);
* ``layer_scaled``: ``y = x · s̄ / s_c``, ``s_c`` the channel's std (ddof 0) and ``s̄`` the mean
  of ``s_c`` over the channels (every channel then has std ``s̄``).

``layer_scaled(peak_centred(z))`` is the "peak centred" view of a layer's neurons,
``s̄ (x − mode_c) / s_c``. They need the channel's raw samples (kept while they fit the memory
limit); a channel with no finite values, or one of zero std under ``layer_scaled``, becomes
NaN and never holds.
"""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Labelled

DEFAULT_MODE_BINS = 50
"""Bins of the histogram whose fullest bin is a channel's mode (the notebooks' 50)."""


def _samples(x: Labelled, what: str) -> tuple[StreamingStats, np.ndarray]:
    """The distribution's statistics and its kept samples ``[channels, n]`` in float64."""
    stats = x.meta.get("stats")
    if not isinstance(stats, StreamingStats):
        raise QuantityError(f"{what}() needs a distribution quantity; '{x.name}' has no "
                            "streaming statistics", hint="use a 'distribution:' quantity or a "
                            "table with 'as: distribution'")
    samples = stats.samples()
    if samples is None:
        raise QuantityError(f"{what}() of '{x.name}' needs the channels' samples, which were "
                            f"not kept ({stats.dropped or 'over the memory limit'})",
                            hint="raise the memory limit (--interp-memory-limit) or use less "
                                 "data")
    return stats, np.asarray(samples, dtype=np.float64)


def _bins(bins: Labelled | None, what: str) -> int:
    """The ``bins`` argument: a whole number >= 1 (default :data:`DEFAULT_MODE_BINS`)."""
    if bins is None:
        return DEFAULT_MODE_BINS
    value = bins.scalar()
    if not value >= 1 or value != int(value):
        raise QuantityError(f"{what}(): the number of bins must be a whole number >= 1, not "
                            f"{value:g}", hint=f"e.g. {what}(x, 50)")
    return int(value)


def channel_modes(samples: np.ndarray, bins: int) -> np.ndarray:
    """Per channel (rows of ``samples``): the midpoint of the fullest of ``bins`` equal-width
    bins over its finite ``[min, max]``; NaN for a channel with no finite values."""
    out = np.full(samples.shape[0], np.nan)
    for c, row in enumerate(samples):
        finite = row[np.isfinite(row)]
        if finite.size == 0:
            continue
        low, high = float(finite.min()), float(finite.max())
        if not high > low:
            out[c] = low
            continue
        counts, edges = np.histogram(finite, bins=bins, range=(low, high))
        k = int(np.argmax(counts))
        out[c] = (edges[k] + edges[k + 1]) / 2
    return out


def _rebuilt(x: Labelled, stats: StreamingStats, values: np.ndarray, name: str) -> Labelled:
    """A distribution quantity like ``x`` holding ``values [channels, n]``."""
    from interp_assert.evaluate.channel_stats import samples_to_stats

    new = samples_to_stats(values.T, bins=stats.bins, thresholds=stats.thresholds)
    meta = {**x.meta, "stats": new}
    if x.meta.get("nonfinite") is not None:  # padded statistics: keep the real NaN counts
        extra = new.nonfinite - stats.nonfinite
        meta["nonfinite"] = np.asarray(x.meta["nonfinite"]).reshape(-1) + extra
    return Labelled(new.mean().reshape(x.shape), x.axes, name, meta)


@register_function("mode", (1, 2))
def mode(x: Labelled, bins: Labelled | None = None) -> Labelled:
    """Per channel of a distribution quantity: the midpoint of the fullest of ``bins`` (50)
    equal-width bins over its finite range."""
    _, samples = _samples(x, "mode")
    modes = channel_modes(samples, _bins(bins, "mode"))
    return Labelled(modes.reshape(x.shape), x.axes, f"mode({x.name})")


@register_function("mean_centred", (1, 1))
def mean_centred(x: Labelled) -> Labelled:
    """A distribution quantity with each channel minus its mean."""
    stats, samples = _samples(x, "mean_centred")
    with np.errstate(invalid="ignore"):
        means = np.array([np.mean(r[np.isfinite(r)]) if np.isfinite(r).any() else np.nan
                          for r in samples])
    return _rebuilt(x, stats, samples - means[:, None], f"mean_centred({x.name})")


@register_function("peak_centred", (1, 2))
def peak_centred(x: Labelled, bins: Labelled | None = None) -> Labelled:
    """A distribution quantity with each channel minus its mode (see :func:`channel_modes`)."""
    stats, samples = _samples(x, "peak_centred")
    modes = channel_modes(samples, _bins(bins, "peak_centred"))
    return _rebuilt(x, stats, samples - modes[:, None], f"peak_centred({x.name})")


@register_function("layer_scaled", (1, 1))
def layer_scaled(x: Labelled) -> Labelled:
    """A distribution quantity with each channel scaled to the channels' mean std."""
    stats, samples = _samples(x, "layer_scaled")
    stds = np.array([np.std(r[np.isfinite(r)]) if np.isfinite(r).any() else np.nan
                     for r in samples])
    usable = np.isfinite(stds)
    if not usable.any():
        raise QuantityError(f"layer_scaled() of '{x.name}': no channel has finite values")
    mean_std = float(np.mean(stds[usable]))
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(stds > 0, mean_std / stds, np.nan)
    return _rebuilt(x, stats, samples * factor[:, None], f"layer_scaled({x.name})")


__all__ = ["DEFAULT_MODE_BINS", "channel_modes", "layer_scaled", "mean_centred", "mode",
           "peak_centred"]
