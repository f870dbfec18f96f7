"""Significant peaks of one channel's streaming histogram (``is unimodal``, ``peaks near``,
``peak(x)``, ``npeaks(x)``).

The algorithm, with the :class:`PeakSettings` defaults in brackets:

1. The histogram of the central 99.8% of the values (between the 0.1% and 99.9% histogram
   quantiles) is rebinned from the streaming histogram to ``bins`` bins [``2·n^(1/3)`` clipped
   to 8..64, and never finer than the streaming bins], then zero-padded at both ends so that an
   edge bin can be a peak.
2. ``scipy.signal.find_peaks`` finds the local maxima, with ``distance`` [1 bin] and ``height``
   [0: no minimum] (``height`` is a fraction of the highest bin); a tiny ramp breaks ties.
3. A peak counts when its prominence is at least ``prominence`` × the highest bin [0.05] and at
   least ``sigmas`` Poisson standard deviations [4] of the counts at the peak and at its saddle:
   ``prominence ≥ sigmas·√(peak count + saddle count)``. The highest peak always counts.
4. Peak locations are refined on the streaming (fine) histogram smoothed by a gaussian of one
   coarse bin, and clipped to the exact min/max; a peak on the bin holding the minimum (maximum)
   is placed at the minimum (maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import QuantityError

if TYPE_CHECKING:
    from interp_assert.evaluate.channel_stats import Channel

MAX_BINS = 64
MIN_BINS = 8
CENTRAL = 0.001
SMOOTH = 1.0
"""Peak locations are refined on the fine histogram smoothed over this many coarse bins."""


@dataclass(frozen=True)
class PeakSettings:
    """The peak detector's settings (the ``find_peaks`` options the claims expose)."""

    bins: int | None = None
    prominence: float = 0.05
    sigmas: float = 4.0
    height: float = 0.0
    distance: int = 1

    @classmethod
    def of(cls, options: dict[str, Any]) -> PeakSettings:
        """Settings from claim options (``bins``, ``prominence``, ``sigmas``, ``height``,
        ``distance``), checked."""
        settings = cls(**options)
        if settings.bins is not None and (settings.bins != int(settings.bins)
                                          or settings.bins < 3):
            raise QuantityError(f"peak 'bins {settings.bins}' must be a whole number >= 3")
        for name in ("prominence", "height"):
            value = getattr(settings, name)
            if not 0 <= value <= 1:
                raise QuantityError(f"peak '{name} {value}' must be a fraction of the highest "
                                    "bin, between 0 and 1")
        if not settings.sigmas >= 0:
            raise QuantityError(f"peak 'sigmas {settings.sigmas}' must be >= 0")
        if settings.distance != int(settings.distance) or settings.distance < 1:
            raise QuantityError(f"peak 'distance {settings.distance}' must be a whole number "
                                "of bins >= 1")
        return settings

    def __str__(self) -> str:
        default = PeakSettings()
        shown = [f"{k} {getattr(self, k):g}" for k in ("bins", "prominence", "sigmas", "height",
                                                        "distance")
                 if getattr(self, k) != getattr(default, k)]
        return f"({', '.join(shown)})" if shown else ""


DEFAULT = PeakSettings()


@dataclass
class Modes:
    """Peaks of one channel: locations (highest first), their bin counts, and the histogram
    they were found on."""

    locations: np.ndarray
    heights: np.ndarray
    counts: np.ndarray
    edges: np.ndarray


def find_modes(ch: Channel, settings: PeakSettings = DEFAULT) -> Modes:
    """Peaks of a rebinned histogram of the central values, highest first (see the module
    docstring)."""
    from scipy.signal import find_peaks

    empty = np.array([])
    if ch.total == 0:
        return Modes(empty, empty, empty, np.array([0.0, 1.0]))
    if not ch.maximum > ch.minimum:
        point = np.array([ch.minimum])
        width = max(abs(ch.minimum) * 1e-6, 1e-9)
        return Modes(point, np.array([ch.total]), np.array([ch.total]),
                     np.array([ch.minimum - width, ch.minimum + width]))
    low, high = ch.histogram_quantile(CENTRAL), ch.histogram_quantile(1 - CENTRAL)
    if not high > low:
        low, high = ch.minimum, ch.maximum
    fine_width = float(ch.edges[1] - ch.edges[0])
    fine_bins = max(1, round((high - low) / fine_width))
    wanted = (settings.bins if settings.bins is not None
              else np.clip(round(2 * ch.total ** (1 / 3)), MIN_BINS, MAX_BINS))
    bins = int(min(wanted, fine_bins))
    edges = np.linspace(low, high, bins + 1)
    counts = np.diff(ch.cumulative(edges))
    padded = np.concatenate([[0.0], counts, [0.0]])
    # a tiny ramp breaks ties, so of two equal peaks only one gets the full prominence
    ramp = 1e-9 * max(counts.max(), 1.0) * np.arange(padded.size) / padded.size
    found, props = find_peaks(padded + ramp, prominence=0, distance=int(settings.distance),
                              height=settings.height * counts.max())
    heights = padded[found]
    prominence = np.minimum(props["prominences"], heights)
    noise = settings.sigmas * np.sqrt(heights + (heights - prominence))
    keep = prominence >= np.maximum(settings.prominence * counts.max(), noise)
    if found.size:
        keep[np.argmax((padded + ramp)[found])] = True  # the highest peak always counts
    found, heights = found[keep] - 1, heights[keep]
    order = np.argsort(-heights, kind="stable")
    found, heights = found[order], heights[order]
    smooth = _smoothed(ch, max(0.5, SMOOTH * (high - low) / bins / fine_width))
    locations = [_locate(ch, i, edges, smooth) for i in found]
    return Modes(np.array(locations), heights, counts, edges)


def _smoothed(ch: Channel, sigma: float) -> np.ndarray:
    """The fine counts smoothed by a gaussian of ``sigma`` bins, reflected at the bins holding
    the exact min and max (so a mode at an edge of the support stays there)."""
    from scipy.ndimage import gaussian_filter1d

    first = int(np.clip(np.searchsorted(ch.edges, ch.minimum, "right") - 1, 0,
                        len(ch.counts) - 1))
    last = int(np.clip(np.searchsorted(ch.edges, ch.maximum, "left") - 1, first,
                       len(ch.counts) - 1))
    out = np.zeros_like(ch.counts)
    out[first:last + 1] = gaussian_filter1d(ch.counts[first:last + 1], sigma, mode="reflect")
    return out


def _locate(ch: Channel, i: int, edges: np.ndarray, smooth: np.ndarray) -> float:
    """Where coarse peak ``i`` is: the highest smoothed fine bin near it, or the exact minimum
    (maximum) when the fine bin holding it has the most raw counts there."""
    centres = (ch.edges[:-1] + ch.edges[1:]) / 2
    bins = len(edges) - 1
    window = np.flatnonzero((ch.edges[1:] > edges[max(i - 1, 0)])
                            & (ch.edges[:-1] < edges[min(i + 2, bins)]))
    if not window.size:
        return float(np.clip((edges[i] + edges[i + 1]) / 2, ch.minimum, ch.maximum))
    raw_best = window[np.argmax(ch.counts[window])]
    for extreme in (ch.minimum, ch.maximum):
        if ch.edges[raw_best] <= extreme <= ch.edges[raw_best + 1]:
            return extreme
    best = window[np.argmax(smooth[window])]
    return float(np.clip(centres[best], ch.minimum, ch.maximum))


__all__ = ["DEFAULT", "Modes", "PeakSettings", "find_modes"]
