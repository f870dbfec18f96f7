"""Significant peaks of one distribution, by hand, for the gates mirror: the steps of
``docs/definitions.md`` ("Peaks") on a 1024-bin histogram of the values (range: the values'
span widened by 5% on each side), with numpy and scipy only."""

from __future__ import annotations

import numpy as np

FINE_BINS = 1024


def _fine(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1024-bin histogram (counts, edges): bin ``floor((v - lo) * 1024 / (hi - lo))``
    clipped to the last bin."""
    low, high = values.min(), values.max()
    span = max(high - low, 1e-6)
    lo, hi = low - 0.05 * span, high + 0.05 * span
    index = np.clip((values - lo) * (FINE_BINS / (hi - lo)), 0, FINE_BINS - 1).astype(np.intp)
    return np.bincount(index, minlength=FINE_BINS).astype(np.float64), np.linspace(
        lo, hi, FINE_BINS + 1)


def count_peaks(values: np.ndarray, prominence: float = 0.05, sigmas: float = 4.0
                ) -> list[float]:
    """The locations of the significant peaks of ``values``, highest first."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    counts, edges = _fine(values)
    low, high, total = values.min(), values.max(), float(values.size)
    cdf = np.concatenate([[0.0], np.cumsum(counts)])

    def quantile(q: float) -> float:  # linear within the bin holding the q-th value
        k = int(np.clip(np.searchsorted(cdf, q * total, side="left"), 1, len(cdf) - 1))
        inside = cdf[k] - cdf[k - 1]
        step = (q * total - cdf[k - 1]) / inside if inside > 0 else 0.0
        return float(np.clip(edges[k - 1] + step * (edges[k] - edges[k - 1]), low, high))

    def below(x: np.ndarray) -> np.ndarray:  # values below x, linear within bins
        out = np.interp(x, np.clip(edges, low, high), cdf)
        return np.where(x > high, total, np.where(x <= low, 0.0, out))

    # 1. the central 99.8%, rebinned to 2 n^(1/3) bins (8..64, never finer than the 1024)
    start, stop = quantile(0.001), quantile(0.999)
    if not stop > start:
        start, stop = low, high
    width = edges[1] - edges[0]
    bins = int(min(np.clip(round(2 * total ** (1 / 3)), 8, 64), max(1, round((stop - start)
                                                                             / width))))
    coarse_edges = np.linspace(start, stop, bins + 1)
    coarse = np.diff(below(coarse_edges))
    padded = np.concatenate([[0.0], coarse, [0.0]])
    ramp = 1e-9 * max(coarse.max(), 1.0) * np.arange(padded.size) / padded.size
    # 2.-3. local maxima whose prominence clears 5% of the highest bin and 4 Poisson sigmas
    found, props = find_peaks(padded + ramp, prominence=0, distance=1, height=0.0)
    heights = padded[found]
    prominences = np.minimum(props["prominences"], heights)
    noise = sigmas * np.sqrt(heights + (heights - prominences))
    significant = prominences >= np.maximum(prominence * coarse.max(), noise)
    significant[np.argmax((padded + ramp)[found])] = True
    found, heights = found[significant] - 1, heights[significant]
    found = found[np.argsort(-heights, kind="stable")]
    # 4. located on the fine histogram smoothed by one coarse bin (reflected at min and max)
    first = int(np.clip(np.searchsorted(edges, low, "right") - 1, 0, FINE_BINS - 1))
    last = int(np.clip(np.searchsorted(edges, high, "left") - 1, first, FINE_BINS - 1))
    smooth = np.zeros(FINE_BINS)
    smooth[first:last + 1] = gaussian_filter1d(
        counts[first:last + 1], max(0.5, (stop - start) / bins / width), mode="reflect")
    centres = (edges[:-1] + edges[1:]) / 2
    locations = []
    for i in found:
        window = np.flatnonzero((edges[1:] > coarse_edges[max(i - 1, 0)])
                                & (edges[:-1] < coarse_edges[min(i + 2, bins)]))
        raw = window[np.argmax(counts[window])]
        at_extreme = [x for x in (low, high) if edges[raw] <= x <= edges[raw + 1]]
        locations.append(float(at_extreme[0]) if at_extreme else float(
            np.clip(centres[window[np.argmax(smooth[window])]], low, high)))
    return locations
