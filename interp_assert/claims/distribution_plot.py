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


def histogram(ax: Axes, data: dict[str, Any], value: float | None) -> None:
    """The histogram (log counts) with the peaks found and the claim's lines (``data`` from
    the claim's plot data)."""
    from interp_assert.claims.plots import FAIL, HOLD, nan_notice

    counts = np.asarray(data["counts"], dtype=float)
    edges = np.asarray(data["edges"], dtype=float)
    if counts.size:
        ax.stairs(np.maximum(counts, 0.5), edges, fill=True, alpha=0.5, color="C0",
                  baseline=0.5)
        ax.set_yscale("log")
    verdict_color = HOLD if data["holds"] else FAIL
    for i, x in enumerate(data["peaks"]):
        ax.axvline(x, color="C4", linewidth=1.5,
                   label=f"peaks found ({len(data['peaks'])})" if i == 0 else None)
    for x, style, label in data.get("lines", []):
        measured = style == "-"  # the channel's statistic; the bounds are dashed
        ax.axvline(x, color=verdict_color if measured else "k", linestyle=style,
                   linewidth=2.5 if measured else 1.5, label=label or None)
    if not counts.size or not np.isfinite(counts).any():
        nan_notice(ax, "no finite values: the statistic is NaN, never passes")
    elif value is not None and not math.isfinite(value):
        nan_notice(ax, "the statistic is NaN: never passes", where=(0.5, 0.8))
    ax.set_ylabel("count (log)")


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


ECDF_POINTS = 2000
"""At most this many points of an ECDF are drawn (evenly spaced ranks)."""


def ecdf_data(ch: Any, statistic: Any, numbers: dict[str, Any], measured: float
              ) -> dict[str, Any] | None:
    """The empirical CDF of channel ``ch`` for a ``fraction``/``quantile``/``median`` claim:
    points ``(x, F(x))`` (of ``|x|`` for ``fraction |x| ...``), the threshold or bound as
    vertical lines and the fraction bound or quantile level as a horizontal line. From the
    kept samples (exact: ``F(x) = #{v <= x} / n``) or else the histogram's cumulative counts."""
    if statistic is None or statistic.name not in ("fraction", "quantile", "median"):
        return None
    absolute = statistic.name == "fraction" and statistic.var == "|x|"
    if ch.total == 0:
        return None
    if ch.exact:
        values = np.sort(np.abs(ch.finite()) if absolute else ch.finite())
        ranks = np.unique(np.linspace(0, values.size - 1, min(values.size, ECDF_POINTS))
                          .astype(int))
        x, f = values[ranks], (ranks + 1) / values.size
    else:
        top = max(abs(ch.minimum), abs(ch.maximum))
        x = np.linspace(0.0, top, 513) if absolute else np.asarray(ch.edges, dtype=float)
        below = ch.cumulative(x) - (ch.cumulative(-x) if absolute else 0.0)
        f = np.clip(below / ch.total, 0.0, 1.0)
    vlines: list[tuple[float, str, str]] = []
    hlines: list[tuple[float, str]] = []
    if statistic.name == "fraction":
        t = numbers["argument"] * (ch.std if statistic.relative else 1.0)
        vlines.append((t, ":", f"threshold {statistic.var} = {t:.4g}"))
        bound = numbers.get("bound")
        if bound is not None and math.isfinite(bound):
            level = bound if statistic.op in ("<", "<=") else 1.0 - bound
            word = "bound" if statistic.op in ("<", "<=") else "1 − bound"
            hlines.append((level, f"{word} on the fraction ({level:.4g})"))
    else:
        q = 0.5 if statistic.name == "median" else numbers["argument"]
        hlines.append((q, f"level q = {q:g}"))
        for key, style in (("bound", "--"), ("upper", ":")):
            value = numbers.get(key)
            if value is not None and math.isfinite(value):
                vlines.append((value, style, f"{key} {value:.4g}"))
    if statistic.name == "fraction":  # the measured fraction, as a level of F at t
        level = measured if statistic.op in ("<", "<=") else 1.0 - measured
        mark = ("h", level, f"measured F(t) = {level:.4g}")
    else:
        mark = ("v", measured, f"measured quantile {measured:.4g}")
    return {"x": x.tolist(), "F": f.tolist(), "xlabel": "|x|" if absolute else "x",
            "vlines": vlines, "hlines": hlines, "measured": mark}


def draw_ecdf(ax: Axes, data: dict[str, Any], holds: bool) -> None:
    """The ECDF as a step line with its threshold (vertical) and level (horizontal) marked;
    the channel's measured quantile or fraction in the verdict's colour."""
    from interp_assert.claims.plots import FAIL, HOLD

    ax.step(data["x"], data["F"], where="post", color="C0", linewidth=1.5,
            label="empirical CDF")
    for x, style, label in data["vlines"]:
        if math.isfinite(x):
            ax.axvline(x, color="k", linestyle=style, linewidth=1.2, label=label)
    for y, label in data["hlines"]:
        ax.axhline(y, color="C1", linestyle="--", linewidth=1.2, label=label)
    where, position, label = data["measured"]
    if math.isfinite(position):
        line = ax.axhline if where == "h" else ax.axvline
        line(position, color=HOLD if holds else FAIL, linewidth=2.0, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction ≤ value (ECDF)")
