"""Failure plots of path patching (the metric before, after and on the source, as bars) and of
attribution patching (each unit's estimate against its real patching effect)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes


def _needed(data: dict[str, Any]) -> float | None:
    """The metric value the claimed bound asks of the patched run (recovery: interpolated
    between the target and the source run; drops / rises: offset from before)."""
    bound, before, source = data.get("bound"), data.get("before"), data.get("source")
    if bound is None or before is None or not math.isfinite(float(bound)):
        return None
    change = data.get("change")
    if change == "recovery" and source is not None:
        return float(before + bound * (source - before))
    if change == "drop":
        return float(before - bound)
    if change == "rise":
        return float(before + bound)
    return None


def _after_span(data: dict[str, Any], interval: tuple[float, float] | None
                ) -> tuple[float, float] | None:
    """The patched run's metric over the effect's confidence interval (recovery: between the
    target and the source run; drops / rises: offset from before)."""
    if interval is None or not all(map(math.isfinite, interval)):
        return None
    before, source, change = data.get("before"), data.get("source"), data.get("change")
    if before is None or not math.isfinite(float(before)):
        return None
    if change == "recovery" and source is not None and math.isfinite(float(source)):
        ends = [before + r * (source - before) for r in interval]
    elif change in ("drop", "rise"):
        ends = [before - e if change == "drop" else before + e for e in interval]
    else:
        return None
    return (float(min(ends)), float(max(ends)))


def plot_path_bars(ax: Axes, outcome: Outcome, metric: str, source: str, target: str,
                   title: str) -> None:
    """Three bars: the metric on the target run, with the path patched, and on the source run;
    the patched bar red when the claim fails, and a dashed line at the value the bound needs."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    values = [float(data.get(k, math.nan)) for k in ("before", "after", "source")]
    names = [f"{target}\n(before)", "path patched\n(after)", f"{source}\n(source)"]
    colors = ["0.6", HOLD if outcome.passed else FAIL, "0.3"]
    finite = [v if math.isfinite(v) else 0.0 for v in values]
    ax.bar(range(3), finite, color=colors)
    for x, value in enumerate(values):
        ax.annotate(fmt(value), (x, finite[x]), ha="center", va="bottom", fontsize=8)
    if not all(math.isfinite(v) for v in values):
        nan_notice(ax, "a NaN metric never passes")
    handles: list[Artist] = [Line2D([], [], color=colors[1], linewidth=6,
                                    label=f"{data.get('change')} {fmt(data.get('effect'))}, the "
                                          f"claim {'holds' if outcome.passed else 'fails'}")]
    span = _after_span(data, outcome.interval)
    if span is not None:  # the effect's confidence interval, in the metric's units
        ax.errorbar([1], [finite[1]], yerr=[[max(finite[1] - span[0], 0)],
                                             [max(span[1] - finite[1], 0)]],
                    color="k", capsize=6, linestyle="none")
        low, high = outcome.interval  # type: ignore[misc]
        handles.append(Line2D([], [], color="k", marker="|", linestyle="none",
                              label=f"{data.get('change')} interval [{fmt(low)}, "
                                    f"{fmt(high)}]"))
    needed = _needed(data)
    if needed is not None:
        ax.axhline(needed, color="k", linestyle="--")
        handles.append(Line2D([], [], color="k", linestyle="--",
                              label=f"{metric} the bound needs: {fmt(needed)}"))
    ax.set_xticks(range(3), names, fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    legend(ax, handles, below=True)
    ax.grid(axis="y", alpha=0.3)


def plot_attribution_scatter(ax: Axes, outcome: Outcome, metric: str) -> None:
    """Each unit's attribution estimate (x) against its real patching effect (y), the diagonal,
    and the units in either top set labelled (red: in one top set only)."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    rows = outcome.rows
    estimate = np.array([float(r["estimate"]) for r in rows])
    real = np.array([float(r["patching"]) for r in rows])
    finite = np.isfinite(estimate) & np.isfinite(real)
    if not finite.any():
        nan_notice(ax, "no finite estimate or effect")
        return
    ax.scatter(estimate[finite], real[finite], color="C0", s=18, zorder=3)
    span = np.concatenate([estimate[finite], real[finite]])
    low, high = float(span.min()), float(span.max())
    ax.plot([low, high], [low, high], color="0.5", linestyle=":", zorder=1)
    handles: list[Artist] = [Line2D([], [], color="0.5", linestyle=":",
                                    label="estimate = real effect")]
    marked = False
    for row, x, y in zip(rows, estimate, real):
        both, one = row.get("top_both"), row.get("top_either")
        if one:
            color = HOLD if both else FAIL
            ax.scatter([x], [y], facecolor="none", edgecolor=color, s=80, zorder=4)
            ax.annotate(row["unit"], (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
            marked = marked or not both
    if any(r.get("top_either") for r in rows):
        handles.append(Line2D([], [], marker="o", markerfacecolor="none", linestyle="",
                              color=HOLD, label="in both top sets"))
    if marked:
        handles.append(Line2D([], [], marker="o", markerfacecolor="none", linestyle="",
                              color=FAIL, label="in one top set only"))
    ax.set_xlabel(f"attribution estimate of the change of {metric}")
    ax.set_ylabel(f"real patching change of {metric}")
    verdict = "holds" if outcome.passed else "fails"
    ax.set_title(f"attribution vs activation patching ({verdict})", fontsize=9)
    legend(ax, handles, below=True)
    ax.grid(alpha=0.3)
