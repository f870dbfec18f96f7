"""Failure plots of the logit lens (the claimed number after every block) and of direct logit
attribution (every component's contribution as a bar)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.claims.plots import FAIL, HOLD, fill_patch, legend, nan_notice

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_lens_curve(claim: Any, outcome: Outcome, ax: Axes) -> None:
    """The judged number (share of samples, or mean) per layer with its interval, the claimed
    layer marked in green or red, and the threshold as a dashed line."""
    from matplotlib.lines import Line2D

    data = outcome.plot_data
    curve = data.get("curve") or [(data["claimed"], data["value"], data["interval"])]
    labels = [label for label, _, _ in curve]
    values = np.array([value for _, value, _ in curve], dtype=float)
    low = np.array([interval[0] for _, _, interval in curve], dtype=float)
    high = np.array([interval[1] for _, _, interval in curve], dtype=float)
    x = np.arange(len(labels))
    ax.plot(x, values, color="C0", marker="o", label="per layer")
    ax.fill_between(x, low, high, color="C0", alpha=0.2)
    color = HOLD if outcome.passed else FAIL
    handles = [Line2D([], [], color="C0", marker="o", label="every block's residual stream"),
               fill_patch("C0", "confidence interval")]
    if data["claimed"] in labels:
        i = labels.index(data["claimed"])
        ax.plot([i], [values[i]], marker="o", markersize=12, color=color, linestyle="none")
        handles.append(Line2D([], [], marker="o", color=color, linestyle="none",
                              label=f"claimed: {data['claimed']} "
                                    f"({'holds' if outcome.passed else 'fails'})"))
    ax.axhline(data["threshold"], color="k", linestyle="--")
    handles.append(Line2D([], [], color="k", linestyle="--",
                          label=f"threshold {fmt(data['threshold'])}"))
    if not np.all(np.isfinite(values)):
        nan_notice(ax, "NaN at some layers: never passes")
    ax.set_xticks(x, labels, rotation=45, fontsize=8)
    what = ("share of samples meeting the condition" if claim.fraction is not None
            else f"mean {claim.stat}")
    ax.set_ylabel(what)
    ax.set_title(f"logit lens: {claim._answer_text()}, after each block", fontsize=9)
    ax.grid(alpha=0.3)
    legend(ax, handles)


def plot_contributions(outcome: Outcome, ax: Axes) -> None:
    """Every component's mean contribution as a bar, claimed components green or red, the
    bound (if any) as a dashed line."""
    from matplotlib.lines import Line2D

    data = outcome.plot_data
    labels, values = data["labels"], np.array(data["values"], dtype=float)
    claimed: dict[str, bool] = data["claimed"]
    colors = [(HOLD if claimed[label] else FAIL) if label in claimed else "C0"
              for label in labels]
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(values), color=colors)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    for tick, label in zip(ax.get_xticklabels(), labels):
        if label in claimed:  # the claimed components' names in their verdict's colour
            tick.set_color(HOLD if claimed[label] else FAIL)
            tick.set_fontweight("bold")
    handles = [fill_patch("C0", "other components")]
    if any(claimed.values()):
        handles.append(fill_patch(HOLD, "claimed: holds"))
    if not all(claimed.values()):
        handles.append(fill_patch(FAIL, "claimed: fails"))
    if data.get("bound") is not None:
        ax.axhline(data["bound"], color="k", linestyle="--")
        handles.append(Line2D([], [], color="k", linestyle="--",
                              label=f"bound {fmt(data['bound'])}"))
    if not np.all(np.isfinite(values)):
        nan_notice(ax, "NaN contributions: never pass")
    ax.set_ylabel(data["unit"])
    ax.set_title(data["title"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    legend(ax, handles)
