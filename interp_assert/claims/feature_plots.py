"""Failure plots of the feature claims: the activation histogram and per-position frequency,
the top activations, and the decoder direction's logits over the vocabulary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from interp_assert.claims.outcome import Outcome, fmt

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_frequency(ax: Axes, outcome: Outcome, comparison: str) -> None:
    """Per position, the fraction of tokens where the feature is nonzero (the claimed
    positions dark), and an inset histogram of its nonzero activations."""
    from matplotlib.patches import Patch

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    data = outcome.plot_data
    per_position = np.asarray(data["per_position"], dtype=float)
    names = data["positions"]
    chosen = set(data["chosen"])
    colors = ["C0" if not chosen or i in chosen else "lightgrey" for i in range(len(names))]
    ax.bar(np.arange(len(names)), per_position, color=colors)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("fraction of tokens where it is nonzero")
    color = HOLD if outcome.passed else FAIL
    frequency = float(data["frequency"])
    if np.isfinite(frequency):
        ax.axhline(frequency, color=color, linestyle="-")
    else:
        nan_notice(ax)
    if np.isfinite(data["bound"]):
        ax.axhline(float(data["bound"]), color="black", linestyle="--")
    handles = [Patch(color=color, label=f"measured {fmt(frequency)} "
                                        f"({'holds' if outcome.passed else 'fails'})"),
               Patch(color="black", label=f"claimed {comparison}")]
    legend(ax, handles, below=True)
    values = np.asarray(data["values"], dtype=float)
    tops = [v for v in (*per_position, frequency, float(data["bound"])) if np.isfinite(v)]
    ax.set_ylim(0, 1.7 * max([*tops, 1e-3]))  # room above the bars for the histogram
    inset = ax.inset_axes((0.55, 0.64, 0.43, 0.3))
    if values.size:
        inset.hist(values, bins=30, color="C1")
    inset.set_title(f"{data['feature']} nonzero activations ({values.size})", fontsize=7)
    inset.tick_params(labelsize=6)
    ax.set_title(f"{data['feature']}: frequency per position", fontsize=9)


def plot_top(ax: Axes, outcome: Outcome) -> None:
    """The top activations as bars, red where the token breaks the condition."""
    from matplotlib.patches import Patch

    from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

    rows = outcome.plot_data["rows"]
    if not rows:
        nan_notice(ax, "the feature is never active: no top tokens")
        return
    values = [r["activation"] for r in rows]
    colors = [HOLD if r["holds"] else FAIL for r in rows]
    ax.barh(np.arange(len(rows)), values, color=colors, height=0.8 if len(rows) <= 30 else 1.0)
    if len(rows) <= 30:
        ax.set_yticks(np.arange(len(rows)))
        ax.set_yticklabels([f"sample {r['sample']} @ {r['position']}" for r in rows], fontsize=7)
    else:  # too many rows to name: the rank axis, and the evidence table names them
        ax.set_ylabel("rank of the activation")
    ax.invert_yaxis()
    ax.set_xlabel(f"activation of {outcome.plot_data['feature']}")
    condition = outcome.plot_data["condition"]
    legend(ax, [Patch(color=HOLD, label=f"token satisfies '{condition}'"),
                Patch(color=FAIL, label=f"token breaks '{condition}'")], below=True)
    short = " (fewer active tokens than claimed)" if outcome.plot_data["short"] else ""
    ax.set_title(f"top activations of {outcome.plot_data['feature']}{short}", fontsize=9)


def plot_writes(ax: Axes, outcome: Outcome) -> None:
    """``W_dec[i] @ W_U`` per token, sorted, with the claimed token and the rank cut marked."""
    from matplotlib.patches import Patch

    from interp_assert.claims.plots import CLAIMED, FAIL, HOLD, legend

    data = outcome.plot_data
    logits = np.asarray(data["logits"], dtype=float)
    order = np.argsort(-logits, kind="stable")[:40]
    token = int(data["token"])
    shown = list(order) if token in order else [*order[:39], token]
    color = HOLD if outcome.passed else FAIL
    ax.bar(np.arange(len(shown)), logits[shown],
           color=[color if t == token else "lightgrey" for t in shown],
           edgecolor=[CLAIMED if t == token else "none" for t in shown])
    ax.set_xticks(np.arange(len(shown)))
    ax.set_xticklabels([str(t) for t in shown], rotation=90, fontsize=7)
    ax.axvline(int(data["rank"]) - 0.5, color="black", linestyle="--")
    ax.set_ylabel("W_dec[i] @ W_U")
    legend(ax, [Patch(color=color, label=f"token {token}"),
                Patch(color="white", label=f"dashed: top {data['rank']} cut")], below=True)
    ax.set_title(f"direct logit effect of {data['feature']}'s decoder direction, tokens by "
                 "rank", fontsize=9)
