"""Failure plots of probes (train, held-out and control scores as bars, the bound as a line)
and of steering (the metric against the steering scale)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes


def plot_probe(ax: Axes, outcome: Outcome, title: str) -> None:
    """Bars: train, held-out (with its interval), the control task's held-out score and, for a
    classifier, the majority-class rate; the line the claimed statistic must reach (for
    selectivity: control + bound); NaN bars hatched."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, NAN_FACE, NAN_HATCH, legend, nan_patch

    data = outcome.plot_data
    score = "R²" if data["task"] == "regression" else "accuracy"
    names = ["train", "held-out", "control\n(held-out)"]
    values = [data["train"], data["test"], data["control_test"]]
    if data["task"] == "classification":
        names.append("majority\nclass")
        values.append(data["majority"])
    colors = ["tab:grey", HOLD if outcome.passed else FAIL, "tab:blue", "lightsteelblue"]
    handles: list[Artist] = []
    for i, value in enumerate(values):
        if value is None or not math.isfinite(value):
            ax.bar(i, 1.0, color=NAN_FACE, hatch=NAN_HATCH, edgecolor="dimgrey")
            if not any(h.get_label().startswith("NaN") for h in handles):
                handles.append(nan_patch())
            continue
        ax.bar(i, value, color=colors[i])
        ax.annotate(fmt(value), (i, value), ha="center", va="bottom", fontsize=8)
    low, high = data["interval"]
    if math.isfinite(low) and math.isfinite(high):
        ax.errorbar([1], [data["test"]], yerr=[[data["test"] - low], [high - data["test"]]],
                    color="black", capsize=4)
        handles.append(Line2D([], [], color="black", label=f"held-out 95% interval "
                                                           f"[{fmt(low)}, {fmt(high)}]"))
    line = data["bound"]
    if data["stat"] == "selectivity" and math.isfinite(data["control_test"]):
        line = data["control_test"] + data["bound"]
        what = f"control + {fmt(100 * data['bound'])} points"
    else:
        what = f"claimed {data['stat']} {data['op']} {fmt(data['bound'])}"
    if line is not None and math.isfinite(line):
        ax.axhline(line, color=FAIL if not outcome.passed else "black", linestyle="--")
        handles.append(Line2D([], [], color=FAIL if not outcome.passed else "black",
                              linestyle="--", label=what))
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(score)
    verdict = "holds" if outcome.passed else "fails"
    ax.set_title(f"{title}: {data['stat']} {fmt(outcome.value)}, the claim {verdict}",
                 fontsize=9)
    legend(ax, handles)


def plot_scales(ax: Axes, outcome: Outcome, title: str) -> None:
    """The metric at each steering scale (the claimed scale starred, red when the claim
    fails), the unsteered value as a dotted line and the value the claim needs as a dashed
    one."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    handles: list[Artist] = []
    sweep = data.get("sweep")
    if isinstance(sweep, Exception):
        raise sweep
    if sweep:
        scales = np.asarray(sweep["scales"], dtype=float)
        metric = np.asarray(sweep["metric"], dtype=float)
        ax.plot(scales, metric, marker="o", color="tab:blue")
        handles.append(Line2D([], [], color="tab:blue", marker="o", label="metric at scale"))
        if not np.all(np.isfinite(metric)):
            nan_notice(ax, "NaN metric at some scales (not drawn)")
    color = HOLD if outcome.passed else FAIL
    after = data["after"]
    if math.isfinite(after):
        ax.plot([data["scale"]], [after], marker="*", markersize=14, color=color,
                linestyle="none")
    handles.append(Line2D([], [], marker="*", color=color, linestyle="none",
                          label=f"claimed scale {fmt(data['scale'])}: {fmt(after)}"))
    span = _metric_span(data, outcome.interval)
    if span is not None:  # the effect's confidence interval, in the metric's units
        ax.errorbar([data["scale"]], [after], yerr=[[after - span[0]], [span[1] - after]],
                    color=color, capsize=6, linestyle="none")
        handles.append(Line2D([], [], color=color, marker="|", linestyle="none",
                              label=f"{data['change']} {fmt(outcome.interval[0])} .. "
                                    f"{fmt(outcome.interval[1])} (confidence interval)"))
    ax.axhline(data["before"], color="grey", linestyle=":")
    handles.append(Line2D([], [], color="grey", linestyle=":",
                          label=f"unsteered {fmt(data['before'])}"))
    need = data.get("needed")
    if need is not None and math.isfinite(need):
        ax.axhline(need, color=color, linestyle="--")
        handles.append(Line2D([], [], color=color, linestyle="--",
                              label=f"needed ({data['change']} {data['expected']})"))
    ax.set_xlabel("steering scale")
    ax.set_ylabel(data["metric"])
    ax.set_title(title, fontsize=9)
    legend(ax, handles)


def _metric_span(data: dict[str, Any], interval: tuple[float, float] | None
                 ) -> tuple[float, float] | None:
    """A rise's or drop's confidence interval as values of the steered metric."""
    if interval is None or not all(map(math.isfinite, interval)) or \
            not math.isfinite(data["after"]) or data["change"] not in ("rise", "drop"):
        return None
    low, high = interval
    before = float(data["before"])
    span = (before + low, before + high) if data["change"] == "rise" else \
        (before - high, before - low)
    return (min(span[0], data["after"]), max(span[1], data["after"]))
