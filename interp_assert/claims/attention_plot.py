"""The failure plot of attention claims: one head's batch-mean pattern with the target cells of
every instance outlined (red where the instance fails, black where it holds), NaN weights
hatched grey, and a legend saying what each outline is."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

#: at most this many instance names are listed in a legend entry
MAX_NAMED = 8


def draw_pattern(ax: Axes, outcome: Outcome, what: str,
                 extra: tuple[list[tuple[int, int]], str, str] | None = None) -> None:
    """The stored pattern with the target cells of each instance (a template's every instance,
    or the claim's own) outlined; ``what`` names the cells (``the target cells``), ``extra``
    is another set of cells to outline dashed, with its colour and legend text."""
    from matplotlib.patches import Rectangle

    from interp_assert.claims.plots import (
        CLAIMED,
        FAIL,
        heatmap,
        legend,
        nan_notice,
        nan_patch,
        outline_patch,
    )

    data = outcome.plot_data
    matrix = np.asarray(data["matrix"], dtype=float)
    finite = matrix[np.isfinite(matrix)]
    top = float(finite.max()) if finite.size else 1.0
    nan = heatmap(ax, matrix, data["queries"], data["keys"], vmin=0.0, vmax=max(top, 1e-9),
                  cmap="Blues")
    instances = data.get("instances") or [{"tag": None, "holds": outcome.passed, "data": data}]
    failing: list[str] = []
    holding: list[str] = []
    elsewhere: list[str] = []
    for instance in instances:
        cells = instance["data"]
        if (cells.get("head"), cells.get("pattern")) != (data["head"], data["pattern"]):
            if not instance["holds"]:
                elsewhere.append(f"{instance['tag']} ({cells.get('head')})")
            continue
        color, width = (FAIL, 2.5) if not instance["holds"] else (CLAIMED, 1.5)
        for i, j in cells["cells"]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color,
                                   linewidth=width, zorder=5))
        (holding if instance["holds"] else failing).append(instance["tag"])
    handles: list[Artist] = []
    for tags, color, verdict in ((failing, FAIL, "fails"), (holding, CLAIMED, "holds")):
        if tags:
            handles.append(outline_patch(color, f"{what}: {verdict}" + _named(tags)))
    if elsewhere:
        handles.append(outline_patch("none", "failing on another head (not shown): "
                                     + ", ".join(elsewhere[:MAX_NAMED])))
    if extra is not None and extra[0]:
        cells, color, label = extra
        for i, j in cells:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color,
                                   linestyle="--", linewidth=1.5, zorder=4))
        handles.append(outline_patch(color, label, "--"))
    if nan:
        handles.append(nan_patch("NaN weight (never passes)"))
    if outcome.value is not None and math.isnan(outcome.value):
        nan_notice(ax, "the score is NaN: never passes")
    legend(ax, handles, below=True)
    ax.set_xlabel("key (attended-to position)")
    ax.set_ylabel("query (attending position)")
    ax.set_title(f"{data['pattern']} {data['head']}: batch-mean attention over "
                 f"{data['samples']}", fontsize=8)


def _named(tags: list[Any]) -> str:
    """`` (i=2, i=5)``: the instances of a template, or nothing for a single claim."""
    named = [str(t) for t in tags if t is not None]
    if not named:
        return ""
    more = f", +{len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else ""
    return f" ({', '.join(named[:MAX_NAMED])}{more})"
