"""The failure plots of weight-circuit claims: a matrix's spectrum (effective rank) and the
congruence of every neuron (the claimed ones marked)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.evaluate.circuit_layout import parse_neuron

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes


def plot_spectrum(ax: Axes, outcome: Outcome, matrix: str) -> None:
    """Singular values as bars (the top k, the effective rank, red when the claim fails, green
    when it holds; the zero ones grey), the cumulative energy and the energy fraction, and the
    claimed bound on k."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, fill_patch

    data = outcome.plot_data
    singular = np.asarray(data["singular"], dtype=float)
    k, nonzero = int(data["k"]), int(data.get("nonzero", singular.size))
    x = np.arange(singular.size)
    top = HOLD if outcome.passed else FAIL
    colors = [top if i < k else ("C0" if i < nonzero else "lightgrey") for i in x]
    ax.bar(x, singular, color=colors, width=1.0 if singular.size > 40 else 0.8)
    ax.set_xlabel("singular value index (descending)")
    ax.set_ylabel("singular value")
    verdict = "holds" if outcome.passed else "fails"
    handles: list[Artist] = [
        fill_patch(top, f"top {k}: the effective rank ({verdict})"),
        fill_patch("C0", f"the other nonzero singular values ({nonzero - k})")]
    if nonzero < singular.size:
        handles.append(fill_patch("lightgrey", f"zero singular values ({singular.size - nonzero}"
                                               f"; the matrix has rank {nonzero})"))
    twin = ax.twinx()
    energy = np.cumsum(singular**2) / np.sum(singular**2)
    twin.plot(x, energy, "k.-", markersize=3)
    twin.axhline(data["fraction"], color="k", linestyle="--")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("cumulative energy")
    handles += [Line2D([], [], color="k", marker=".", label="cumulative energy Σs²"),
                Line2D([], [], color="k", linestyle="--",
                       label=f"energy fraction {fmt(data['fraction'])}")]
    color = "k" if outcome.passed else FAIL
    for limit in (data.get("bound"), data.get("upper") if data.get("op") == "in" else None):
        if limit is not None and math.isfinite(limit) and data.get("op") != "≈":
            ax.axvline(limit - 0.5, color=color, linestyle=":", linewidth=2)
    if data.get("bound") is not None and data.get("op") != "≈":
        text = (f"in [{fmt(data['bound'])}, {fmt(data['upper'])}]" if data["op"] == "in"
                else f"{data['op']} {fmt(data['bound'])}")
        handles.append(Line2D([], [], color=color, linestyle=":", linewidth=2,
                              label=f"claimed: effective rank {text}"))
    twin.legend(handles=handles, loc="center right", fontsize=7)
    ax.set_title(f"spectrum of {matrix}: effective rank {k} of {singular.size} singular "
                 f"values, {nonzero} nonzero", fontsize=9)


def plot_congruence(ax: Axes, outcome: Outcome, neurons: tuple[str, ...], what: str,
                    op: str) -> None:
    """Every neuron's congruence by layer, the claimed neurons green where they hold and red
    where they fail, with the bound(s)."""
    from matplotlib.lines import Line2D

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    labels, values = data["labels"], np.asarray(data["values"], dtype=float)
    layers = np.array([(parse_neuron(label) or (0, 0))[0] for label in labels], dtype=float)
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=len(labels))
    ax.scatter(layers + jitter, values, s=8, color="C0", alpha=0.6)
    handles: list[Artist] = [Line2D([], [], marker="o", linestyle="", color="C0", alpha=0.6,
                                    markersize=4, label="every neuron")]
    holds = {row["neuron"]: bool(row["holds"]) for row in outcome.rows}
    nan = []
    for label in neurons:
        i = labels.index(label)
        color = HOLD if holds.get(label, outcome.passed) else FAIL
        if not math.isfinite(values[i]):
            nan.append(label)
            continue
        ax.scatter(layers[i] + jitter[i], values[i], s=50, color=color, zorder=3,
                   edgecolor="black")
        ax.annotate(label, (layers[i] + jitter[i], values[i]), fontsize=8, color=color,
                    xytext=(4, 4), textcoords="offset points")
    for ok, word in ((True, "holds"), (False, "fails")):
        if any(holds.get(n) == ok for n in neurons):
            handles.append(Line2D([], [], marker="o", linestyle="", markeredgecolor="black",
                                  color=HOLD if ok else FAIL, label=f"claimed neuron: {word}"))
    bound, upper = data.get("bound"), data.get("upper")
    for value, style in ((bound, "--"), (upper, ":")):
        if value is not None and math.isfinite(value):
            ax.axhline(value, color="k", linestyle=style)
    if bound is not None:
        text = f"bound: {op} {fmt(bound)}" if upper is None else (
            f"bounds: {op} [{fmt(bound)}, {fmt(upper)}]")
        handles.append(Line2D([], [], color="k", linestyle="--", label=text))
    if nan:
        nan_notice(ax, f"{', '.join(nan)}: congruence NaN, never passes", where=(0.5, 0.9))
    ax.set_xticks(sorted(set(layers)), [f"layer {int(v)}" for v in sorted(set(layers))])
    ax.set_ylabel(what)
    legend(ax, handles)
    ax.grid(axis="y", alpha=0.3)
