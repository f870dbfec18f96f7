"""Plot helpers of distribution claims: a histogram panel above a strip of every channel's
statistic (green where the channel holds, red where it fails, NaN hatched)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def split(ax: Axes) -> tuple[Axes, Axes]:
    """Replace ``ax`` by a histogram panel above a strip panel."""
    figure = ax.figure
    spec = ax.get_subplotspec()
    ax.remove()
    grid = spec.subgridspec(2, 1, height_ratios=[3, 1])
    return figure.add_subplot(grid[0]), figure.add_subplot(grid[1])


def strip(ax: Axes, strip: dict[str, Any], title: str) -> None:
    """Each channel's statistic as a dot, green where it does not count against the claim."""
    from interp_assert.claims.plots import FAIL, HOLD, nan_columns

    values = np.asarray(strip["values"], dtype=float)
    x = np.arange(values.size)
    ok = np.asarray(strip["holds"], dtype=bool)
    shown = np.where(np.isfinite(values), values, np.nan)
    size = 8 if values.size > 64 else 16
    for mask, color, word in ((ok, HOLD, "holds"), (~ok, FAIL, "fails")):
        if mask.any():
            ax.scatter(x[mask], shown[mask], color=color, s=size, label=f"channel {word}")
    bad = ~np.isfinite(values)
    if bad.any():
        nan_columns(ax, np.flatnonzero(bad).tolist())
    for i, bound in enumerate(b for b in strip.get("bounds", []) if math.isfinite(b)):
        ax.axhline(bound, color="k", linestyle="--" if i == 0 else ":", linewidth=1,
                   label="bound" if i == 0 else "upper")
    ax.legend(loc="best", fontsize=6)
    if values.size <= 40:
        ax.set_xticks(x, strip["labels"], rotation=90, fontsize=6)
    ax.set_ylabel(title, fontsize=7)
    ax.grid(alpha=0.3)
