"""Plot helpers shared by claim kinds' ``plot`` methods: heatmaps and values against bounds.
Only called when a plot is drawn (matplotlib is imported by the caller's figure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def heatmap(ax: Axes, matrix: np.ndarray, rows: list[str], cols: list[str], *,
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis",
            outline: list[tuple[int, int]] = (), annotate: bool = False,
            outline_color: str = "black") -> None:
    """A labelled heatmap with chosen cells outlined."""
    from matplotlib.patches import Rectangle

    image = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    small = len(rows) <= 40 and len(cols) <= 40
    if small:
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i, j in outline:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=outline_color,
                               linewidth=2))
    if annotate and small:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if np.isnan(matrix[i, j]):
                    continue
                # light text on the dark half of the colour scale, dark text on the light half
                dark = sum(image.cmap(image.norm(matrix[i, j]))[:3]) < 1.5
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")


def plot_value_against_bounds(claim: Any, outcome: Outcome, ax: Axes) -> None:
    """Horizontal bars of measured values with the bound(s) as vertical lines."""
    data = outcome.plot_data
    values: dict[str, float] = data.get("values") or {str(claim): outcome.value or np.nan}
    labels = list(values)[:60]
    numbers = [values[k] for k in labels]
    colors = ["C2" if _holds(row) else "C3" for row in _rows_for(outcome, labels)]
    y = np.arange(len(labels))
    ax.barh(y, numbers, color=colors)
    ax.set_yticks(y, labels, fontsize=7 if len(labels) > 15 else 9)
    interval = data.get("interval")
    if interval is not None and len(labels) == 1:
        ax.errorbar(numbers[0], 0, xerr=[[numbers[0] - interval[0]], [interval[1] - numbers[0]]],
                    fmt="none", ecolor="k", capsize=6, label="confidence interval")
    for key, style in (("bound", "--"), ("upper", ":")):
        if data.get(key) is not None:
            ax.axvline(data[key], color="k", linestyle=style, label=f"{key} {fmt(data[key])}")
    ax.legend(loc="best", fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def _rows_for(outcome: Outcome, labels: list[str]) -> list[dict[str, Any]]:
    if len(outcome.rows) == len(labels):
        return outcome.rows
    return [{"holds": outcome.passed}] * len(labels)


def _holds(row: dict[str, Any]) -> bool:
    return bool(row.get("holds", True))
