"""Plot helpers shared by claim kinds' ``plot`` methods: heatmaps, values against bounds, and
the conventions every failure plot follows (failing elements in :data:`FAIL` red, NaN shown
explicitly as hatched grey, a legend saying what is drawn). Only called when a plot is drawn
(matplotlib is imported by the caller's figure)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

#: failing elements: outlines, bars, markers
FAIL = "red"
#: elements that hold
HOLD = "tab:green"
#: the claimed elements when they hold (outlines)
CLAIMED = "black"
#: NaN elements: a hatched grey patch labelled "NaN"
NAN_FACE = "lightgrey"
NAN_HATCH = "///"
NAN_TEXT = "value is NaN: never passes"


def nan_patch(label: str = "NaN (never passes)") -> Artist:
    """The legend entry of a NaN element."""
    from matplotlib.patches import Patch

    return Patch(facecolor=NAN_FACE, edgecolor="dimgrey", hatch=NAN_HATCH, label=label)


def outline_patch(color: str, label: str, linestyle: str = "-") -> Artist:
    """The legend entry of an outline."""
    from matplotlib.patches import Patch

    return Patch(fill=False, edgecolor=color, linewidth=2, linestyle=linestyle, label=label)


def fill_patch(color: str, label: str) -> Artist:
    """The legend entry of a filled bar or cell."""
    from matplotlib.patches import Patch

    return Patch(facecolor=color, label=label)


def legend(ax: Axes, handles: list[Artist], *, below: bool = False) -> None:
    """A legend of ``handles`` (nothing when empty); ``below`` puts it at the foot of the
    figure, clear of a heatmap's cells and tick labels."""
    if not handles:
        return
    if below:
        ax.figure.legend(handles=handles, loc="outside lower center", fontsize=7,
                         ncol=min(len(handles), 3), frameon=False)
    else:
        ax.legend(handles=handles, loc="best", fontsize=7)


def legend_texts(ax: Axes) -> list[str]:
    """The entries of every legend drawn for ``ax`` (its own and its figure's)."""
    legends = [ax.get_legend(), *ax.figure.legends]
    return [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]


def nan_notice(ax: Axes, text: str = NAN_TEXT, *, where: tuple[float, float] = (0.5, 0.5)
               ) -> None:
    """A text box on the axes saying a value is NaN (hatched grey, red edge)."""
    ax.text(*where, text, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="black", zorder=10,
            bbox={"boxstyle": "round", "facecolor": NAN_FACE, "edgecolor": FAIL,
                  "hatch": NAN_HATCH, "linewidth": 1.5})


def heatmap(ax: Axes, matrix: np.ndarray, rows: list[str], cols: list[str], *,
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis",
            outline: list[tuple[int, int]] = (), annotate: bool = False,
            outline_color: str = FAIL, linestyle: str = "-",
            blank: np.ndarray | None = None) -> bool:
    """A labelled heatmap with chosen cells outlined and NaN cells hatched grey (labelled
    "NaN" when the cells are few enough to read; ``blank`` cells, such as a member paired with
    itself, are left empty instead); returns whether any cell is NaN."""
    from matplotlib.patches import Rectangle

    matrix = np.asarray(matrix, dtype=float)
    finite = matrix[np.isfinite(matrix)]
    if vmin is not None and vmax is not None and not vmin < vmax:
        vmax = vmin + 1e-9
    image = ax.imshow(matrix, vmin=vmin if vmin is not None or finite.size else 0.0,
                      vmax=vmax if vmax is not None or finite.size else 1.0, cmap=cmap,
                      aspect="auto")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    small = len(rows) <= 40 and len(cols) <= 40
    if small:
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
    nan = np.argwhere(np.isnan(matrix) & (True if blank is None else ~np.asarray(blank)))
    for i, j in nan:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=NAN_FACE, edgecolor="dimgrey",
                               hatch=NAN_HATCH, linewidth=0.5, gid="nan"))
        if small:
            ax.text(j, i, "NaN", ha="center", va="center", fontsize=6, color="black")
    for i, j in outline:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=outline_color,
                               linewidth=2, linestyle=linestyle, zorder=5))
    if annotate and small:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if np.isnan(matrix[i, j]):
                    continue
                # light text on the dark half of the colour scale, dark text on the light half
                dark = sum(image.cmap(image.norm(matrix[i, j]))[:3]) < 1.5
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    return bool(nan.size)


def plot_value_against_bounds(claim: Any, outcome: Outcome, ax: Axes) -> None:
    """Horizontal bars of measured values (red where they fail, green where they hold, hatched
    grey "NaN" where they are NaN) with the bound(s), or the ``≈`` band, drawn in."""
    from matplotlib.lines import Line2D

    data = outcome.plot_data
    entries = _entries(claim, outcome)[:60]
    labels = [label for label, _, _ in entries]
    numbers = np.array([value for _, value, _ in entries], dtype=float)
    holds = [ok for _, _, ok in entries]
    y = np.arange(len(labels))
    nan = ~np.isfinite(numbers)
    colors = [HOLD if ok and not bad else FAIL for ok, bad in zip(holds, nan)]
    ax.barh(y, np.where(nan, 0.0, numbers), color=colors)
    ax.set_yticks(y, labels, fontsize=7 if len(labels) > 15 else 9)
    handles: list[Artist] = []
    if any(h and not b for h, b in zip(holds, nan)):
        handles.append(fill_patch(HOLD, "measured: holds"))
    if any(not h and not b for h, b in zip(holds, nan)):
        handles.append(fill_patch(FAIL, "measured: fails"))
    interval = data.get("interval")
    if interval is not None and len(labels) == 1 and not nan[0]:
        ax.errorbar(numbers[0], 0, xerr=[[numbers[0] - interval[0]], [interval[1] - numbers[0]]],
                    fmt="none", ecolor="k", capsize=6)
        handles.append(Line2D([], [], color="k", marker="|", markersize=10,
                              label=f"confidence interval [{fmt(interval[0])}, "
                                    f"{fmt(interval[1])}]"))
    handles += _bounds(ax, getattr(getattr(claim, "comparison", None), "op", None), data)
    how = getattr(claim, "how", None)
    if how in ("mean", "max", "min") and outcome.value is not None and \
            math.isfinite(outcome.value):  # an aggregate's judged value
        color = HOLD if outcome.passed else FAIL
        ax.axvline(outcome.value, color=color, linewidth=2.5)
        handles.append(Line2D([], [], color=color, linewidth=2.5,
                              label=f"{how} {fmt(outcome.value)} (judged)"))
    if nan.any():
        _nan_bars(ax, y[nan])
        handles.append(nan_patch())
        if nan.all():
            nan_notice(ax, NAN_TEXT if len(labels) == 1 else "every value is NaN: never passes")
    legend(ax, handles)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def _bounds(ax: Axes, op: str | None, data: dict[str, Any]) -> list[Artist]:
    """The bound lines (or the ``≈`` band); their legend entries."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bound, upper = data.get("bound"), data.get("upper")
    if op == "≈" and bound is not None and upper is not None and math.isfinite(bound):
        ax.axvline(bound, color="k", linestyle="--")
        ax.axvspan(bound - upper, bound + upper, color=HOLD, alpha=0.15)
        return [Line2D([], [], color="k", linestyle="--", label=f"target {fmt(bound)}"),
                Patch(facecolor=HOLD, alpha=0.15, label=f"allowed: ± {fmt(upper)}")]
    handles: list[Artist] = []
    for value, style, name in ((bound, "--", "bound" if upper is None else "lower bound"),
                               (upper, ":", "upper bound")):
        if value is not None and math.isfinite(value):
            ax.axvline(value, color="k", linestyle=style)
            handles.append(Line2D([], [], color="k", linestyle=style,
                                  label=f"{name} {fmt(value)}"))
    return handles


def nan_columns(ax: Axes, columns: list[int]) -> None:
    """Hatched grey bars up the axes, labelled NaN, at the NaN columns of a bar chart."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    up = blended_transform_factory(ax.transData, ax.transAxes)
    for column in columns:
        ax.add_patch(Rectangle((column - 0.4, 0), 0.8, 1, transform=up, facecolor=NAN_FACE,
                               edgecolor="dimgrey", hatch=NAN_HATCH, gid="nan"))
        ax.text(column, 0.5, "NaN", transform=up, ha="center", va="center", fontsize=7,
                rotation=90)


def _nan_bars(ax: Axes, rows: np.ndarray) -> None:
    """Hatched grey bars across the axes, labelled NaN, at the NaN rows."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    across = blended_transform_factory(ax.transAxes, ax.transData)
    for row in rows:
        ax.add_patch(Rectangle((0, row - 0.4), 1, 0.8, transform=across, facecolor=NAN_FACE,
                               edgecolor="dimgrey", hatch=NAN_HATCH, gid="nan"))
        ax.text(0.5, row, "NaN", transform=across, ha="center", va="center", fontsize=8)


def _entries(claim: Any, outcome: Outcome) -> list[tuple[str, float, bool]]:
    """(label, value, holds) of each bar: a template's every instance, or the claim's values
    (each element's verdict where the evidence table has one row per value)."""
    instances = outcome.plot_data.get("instances")
    if instances:
        entries = []
        for instance in instances:
            values = instance["data"].get("values") or {"": instance["value"]}
            for label, value in values.items():
                name = str(instance["tag"]) + (f" {label}" if len(values) > 1 else "")
                entries.append((name, _number(value), bool(instance["holds"])))
        return entries
    values = outcome.plot_data.get("values") or {str(claim): _number(outcome.value)}
    labels = list(values)
    rows = _rows_for(outcome, labels)
    return [(label, _number(values[label]), _holds(row)) for label, row in zip(labels, rows)]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _rows_for(outcome: Outcome, labels: list[str]) -> list[dict[str, Any]]:
    if len(outcome.rows) == len(labels):
        return outcome.rows
    return [{"holds": outcome.passed}] * len(labels)


def _holds(row: dict[str, Any]) -> bool:
    return bool(row.get("holds", True))
