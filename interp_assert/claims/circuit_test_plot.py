"""The failure plot of circuit hypothesis tests: the circuit's score against the histogram of
random circuits' scores (with the claimed bound), each member's effect for minimality, or the
metric of each run otherwise."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes


def plot_circuit_test(ax: Axes, outcome: Outcome, name: str) -> None:
    """Draw the evidence of a circuit claim (see the module docstring)."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    color = HOLD if outcome.passed else FAIL
    handles: list[Artist] = []
    value = float(data.get("value", math.nan))
    if "members" in data:
        labels = list(data["members"])
        heights = np.asarray([data["members"][k] for k in labels], dtype=float)
        finite = np.where(np.isfinite(heights), heights, 0.0)
        bars = ax.bar(range(len(labels)), finite, color="C0")
        for bar, height in zip(bars, heights):
            if not (math.isfinite(height) and height >= data["bound"]):
                bar.set_color(FAIL)
        spans = data.get("member_intervals")
        if spans:  # each member's confidence interval
            ends = np.asarray([spans[k] for k in labels], dtype=float)
            ok = np.all(np.isfinite(ends), axis=1)
            centre = np.where(ok, finite, 0.0)
            ax.errorbar(np.arange(len(labels))[ok], centre[ok],
                        yerr=[np.maximum(centre - ends[:, 0], 0)[ok],
                              np.maximum(ends[:, 1] - centre, 0)[ok]],
                        color="k", capsize=5, linestyle="none")
            handles.append(Line2D([], [], color="k", marker="|", linestyle="none",
                                  label="confidence interval of each member's effect"))
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0)
        ax.set_ylabel("effect of removing the member (fraction of the gap)")
    elif "random" in data:
        scores = np.asarray(data["random"], dtype=float)
        finite = scores[np.isfinite(scores)]
        if finite.size:
            ax.hist(finite, bins=min(20, max(5, finite.size // 2)), color="C0", alpha=0.7)
        handles.append(Line2D([], [], color="C0", linewidth=6, alpha=0.7,
                              label=f"{scores.size} random circuits of the same size"))
        if math.isfinite(value):
            ax.axvline(value, color=color, linewidth=2.5)
        interval = outcome.interval
        if interval is not None and all(map(math.isfinite, interval)):
            ax.axvspan(interval[0], interval[1], color=color, alpha=0.2)
            handles.append(Line2D([], [], color=color, linewidth=6, alpha=0.2,
                                  label=f"its confidence interval [{fmt(interval[0])}, "
                                        f"{fmt(interval[1])}]"))
        handles.append(Line2D([], [], color=color, linewidth=2.5,
                              label=f"{name}: {data['score']} {fmt(value)}, beats "
                                    f"{fmt(100 * data['fraction'])}% (needs "
                                    f"{fmt(100 * data['beats'])}%), p = {fmt(data['p'])}"))
        ax.set_xlabel(data["score"])
        ax.set_ylabel("random circuits")
    else:
        runs = [r for r in outcome.rows if r.get("metric") is not None]
        heights = np.asarray([float(r["metric"]) for r in runs], dtype=float)
        ax.bar(range(len(runs)), np.where(np.isfinite(heights), heights, 0.0),
               color=["C7"] * (len(runs) - 1) + [color])
        ax.set_xticks(range(len(runs)), [str(r["run"]) for r in runs], fontsize=7)
        ax.set_ylabel("metric")
        interval = outcome.interval
        span = f", interval [{fmt(interval[0])}, {fmt(interval[1])}]" \
            if interval is not None else ""
        handles.append(Line2D([], [], color=color, linewidth=6,
                              label=f"{data['score']} {fmt(value)}{span} "
                                    f"({'holds' if outcome.passed else 'fails'})"))
    if not math.isfinite(value):
        nan_notice(ax, f"the {data['score']} is NaN: never passes")
    bound = data.get("bound")
    if bound is not None and math.isfinite(bound) and "members" in data:
        ax.axhline(bound, color="k", linestyle="--")
        handles.append(Line2D([], [], color="k", linestyle="--", label=f"bound {fmt(bound)}"))
    elif bound is not None and math.isfinite(bound) and "random" in data:
        ax.axvline(bound, color="k", linestyle="--")
        handles.append(Line2D([], [], color="k", linestyle="--",
                              label=f"claimed bound {fmt(bound)}"))
    ax.set_title(f"circuit {name}: {data['score']}", fontsize=9)
    if handles:
        legend(ax, handles)
