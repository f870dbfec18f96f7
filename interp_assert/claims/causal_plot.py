"""The failure plots of causal claims: the per-head sweep (each head's effect alone, the
claimed heads outlined) and the claimed effect against random control sets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes


def plot_sweep(ax: Axes, outcome: Outcome, heads: list[tuple[int, int]], title: str) -> None:
    """Each head's effect alone as a [layer, head] heatmap; the claimed heads outlined red
    when the claim fails, black when it holds."""
    from interp_assert.claims.plots import CLAIMED, FAIL, heatmap, legend, nan_patch
    from interp_assert.claims.plots import outline_patch as outline

    data = outcome.plot_data
    grid = np.asarray(data["sweep"]["grid"], dtype=float)
    rows, cols = data["sweep"]["rows"], data["sweep"]["cols"]
    cells = [(rows.index(f"L{layer}"), head) for layer, head in heads]
    finite = np.abs(grid[np.isfinite(grid)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    color = CLAIMED if outcome.passed else FAIL
    nan = heatmap(ax, grid, rows, cols, outline=cells, annotate=True, outline_color=color,
                  cmap="PuOr_r", vmin=-scale, vmax=scale)
    together = "together " if len(heads) > 1 else ""
    verdict = "holds" if outcome.passed else "fails"
    interval = outcome.interval
    span = f" (interval [{fmt(interval[0])}, {fmt(interval[1])}])" if interval else ""
    handles: list[Artist] = [outline(color, f"claimed heads: {together}{data['change']} "
                                            f"{fmt(data['effect'])}{span}, the claim "
                                            f"{verdict}")]
    if nan:
        handles.append(nan_patch("NaN effect"))
    legend(ax, handles, below=True)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)


def plot_controls(ax: Axes, outcome: Outcome, parts: str) -> None:
    """The claimed effect (a star, red when it fails its bound) against the random sets (dots,
    red where a set fails the control's bound) and both bounds."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    controls = np.asarray(data.get("controls") or [], dtype=float)
    control_rows = [r for r in outcome.rows[1:] if "holds" in r][:controls.size]
    handles: list[Artist] = []
    if controls.size:
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=controls.size)
        ok = np.array([bool(r["holds"]) for r in control_rows]
                      if len(control_rows) == controls.size else [True] * controls.size)
        for mask, color, word in ((ok, "C0", "holds"), (~ok, FAIL, "fails")):
            if mask.any():
                ax.scatter(jitter[mask], controls[mask], color=color, zorder=3)
                handles.append(Line2D([], [], marker="o", linestyle="", color=color,
                                      label=f"random set: its bound {word}"))
    effect = float(data["effect"]) if data.get("effect") is not None else math.nan
    holds = bool(outcome.rows[0].get("holds", outcome.passed)) if outcome.rows else \
        outcome.passed
    if math.isfinite(effect):
        color = HOLD if holds else FAIL
        if outcome.interval is not None and all(map(math.isfinite, outcome.interval)):
            low, high = outcome.interval  # the confidence interval of the effect
            ax.errorbar([0], [effect], yerr=[[effect - low], [high - effect]], color=color,
                        capsize=6, zorder=3)
        ax.scatter([0], [effect], color=color, s=140, marker="*", zorder=4)
        handles.append(Line2D([], [], marker="*", markersize=12, linestyle="", color=color,
                              label=f"{parts}: {data['change']} {fmt(effect)} "
                                    f"({'holds' if holds else 'fails'})"))
    else:
        nan_notice(ax, f"the {data['change']} is NaN: never passes")
    for value, style, label in _bound_lines(data):
        ax.axhline(value, color="k" if "control" not in label else "C0", linestyle=style)
        handles.append(Line2D([], [], color="k" if "control" not in label else "C0",
                              linestyle=style, label=label))
    ax.set_xticks([])
    ax.set_xlim(-1, 1)
    ax.set_ylabel(data["change"])
    if data.get("rank"):  # a rank test of the effect among the random sets (random_rank.py)
        ax.set_title(f"claimed effect {data['rank']}", fontsize=9)
    legend(ax, handles)
    ax.grid(axis="y", alpha=0.3)


def _bound_lines(data: dict[str, Any]) -> list[tuple[float, str, str]]:
    """(value, line style, legend text) of the claimed bound(s) and the control's."""
    lines = []
    for value, label in ((data.get("bound"), "claimed bound"), (data.get("upper"), "upper")):
        if value is not None and math.isfinite(value):
            lines.append((float(value), "--", f"{label} {fmt(value)}"))
    control = data.get("control_bound")
    if control and control[0] is not None and math.isfinite(control[0]):
        lines.append((float(control[0]), ":", f"control bound {fmt(control[0])}"))
    return lines
