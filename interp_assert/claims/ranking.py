"""Rankings: ``N1 in top 10 of Q``, ``N1 ranks above N7 in Q``, ``argmax of Q over digits is 9``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.labels import Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def ranks(values: np.ndarray, descending: bool = True) -> np.ndarray:
    """1-based rank of every element (ties share the better rank); NaN ranks last."""
    keyed = np.where(np.isfinite(values), values, -np.inf if descending else np.inf)
    keyed = -keyed if descending else keyed
    return np.array([1 + int(np.sum(keyed < k)) for k in keyed])


def _vector(ctx: Context, node: ast.Node) -> Labelled:
    quantity = ctx.value(node)
    if quantity.ndim != 1:
        raise QuantityError(f"'{node}' has shape {quantity.shape}; a ranking needs one axis",
                            hint="index or reduce the other axes first")
    return quantity



def plot_ranking(ax: Axes, labels: list[str], values: list[float], claimed: dict[str, bool],
                 title: str, k: int | None = None, limit: int = 40,
                 descending: bool = True) -> None:
    """Sorted bars (best first), each claimed label green where its part of the claim holds and
    red where it fails, NaN values as hatched grey bars; a line after the top (or bottom) k."""
    from interp_assert.claims.plots import (
        FAIL,
        HOLD,
        fill_patch,
        legend,
        nan_columns,
        nan_patch,
    )

    numbers = np.asarray(values, dtype=float)
    keyed = np.nan_to_num(numbers if descending else -numbers, nan=-np.inf)
    order = np.argsort(-keyed, kind="stable")
    shown = [int(i) for i in order[:limit]]
    shown += [int(i) for i in order[limit:] if labels[i] in claimed]
    colors = [(HOLD if claimed[labels[i]] else FAIL) if labels[i] in claimed else "C0"
              for i in shown]
    heights = [0.0 if np.isnan(numbers[i]) else numbers[i] for i in shown]
    ax.bar(range(len(shown)), heights, color=colors)
    ax.set_xticks(range(len(shown)), [labels[i] for i in shown], rotation=90, fontsize=7)
    for tick, i in zip(ax.get_xticklabels(), shown):
        if labels[i] in claimed:
            tick.set_color(HOLD if claimed[labels[i]] else FAIL)
            tick.set_fontweight("bold")
    handles = [fill_patch("C0", "other labels")]
    if any(claimed.values()):
        handles.append(fill_patch(HOLD, "claimed: holds"))
    if not all(claimed.values()):
        handles.append(fill_patch(FAIL, "claimed: fails"))
    if k is not None and k < len(shown):
        from matplotlib.lines import Line2D

        ax.axvline(k - 0.5, color="k", linestyle="--")
        handles.append(Line2D([], [], color="k", linestyle="--",
                              label=f"{'top' if descending else 'bottom'} {k} cut-off"))
    nan = [n for n, i in enumerate(shown) if np.isnan(numbers[i])]
    if nan:
        nan_columns(ax, nan)
        handles.append(nan_patch("NaN (ranks last; never passes)"))
    if len(shown) < len(labels):
        ax.set_xlabel(f"{len(shown)} of {len(labels)} labels shown (the first {limit} and every "
                      "claimed one)", fontsize=7)
    legend(ax, handles)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)


@register_claim
@dataclass
class TopK(Claim):
    """Every listed label ranks within the top (or bottom) k of a one-dimensional quantity."""

    kind = "top_k"
    grammar = r"""top_k: members "in" SIDE INT "of" expr
SIDE: /(top|bottom)\b/"""

    members: ast.Members
    side: str
    k: int
    source: ast.Node

    @classmethod
    def build(cls, children: list[Any]) -> TopK:
        members, side, k, source = children
        return cls(members, str(side), int(k), source)

    def __str__(self) -> str:
        return f"{self.members} in {self.side} {self.k} of {self.source}"

    def evaluate(self, ctx: Context) -> Outcome:
        vector = _vector(ctx, self.source)
        size = vector.shape[0]
        if not 1 <= self.k <= size:
            raise QuantityError(f"'{self.side} {self.k}' of the {size} values of "
                                f"'{self.source}' " + ("selects nothing" if self.k < 1 else
                                                       "is more than there are"),
                                hint=f"use a k between 1 and {size}")
        rank = ranks(vector.values, descending=self.side == "top")
        labels = vector.labels_of(0)
        rows, passed = [], True
        for label in self.members.labels:
            i = vector.axes[0].index_of(label)
            ok = bool(rank[i] <= self.k and np.isfinite(vector.values[i]))
            passed = passed and ok
            rows.append({"label": label, "value": float(vector.values[i]), "rank": int(rank[i]),
                         "holds": ok})
        worst = max(rows, key=lambda r: r["rank"])
        top = self.side == "top"
        keyed = np.where(np.isfinite(vector.values), vector.values, -np.inf if top else np.inf)
        cutoff = np.sort(keyed)[::-1 if top else 1][self.k - 1]
        measured = (f"{worst['label']} ranks {worst['rank']} of {len(labels)} "
                    f"(value {fmt(worst['value'])}; rank-{self.k} value {fmt(float(cutoff))})")
        expected = f"every listed label within the {self.side} {self.k}"
        claimed = {row["label"]: bool(row["holds"]) for row in rows}
        return Outcome(passed, measured, expected, value=float(worst["rank"]), rows=rows,
                       plot_data={"labels": labels, "values": vector.values.tolist(),
                                  "claimed": claimed})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """Sorted bars; every instance's claimed labels marked (templates included)."""
        from interp_assert.claims.template_plots import instances_note, merged_claims

        data = outcome.plot_data
        claimed, failing, elsewhere = merged_claims(data, data["claimed"])
        plot_ranking(ax, data["labels"], data["values"], claimed,
                     f"{self.source}: claimed labels must be in the {self.side} {self.k}"
                     + instances_note(failing, elsewhere),
                     k=self.k, descending=self.side == "top")


@register_claim
@dataclass
class RanksAbove(Claim):
    """``N1 ranks above N7 in Q``: Q[N1] > Q[N7]."""

    kind = "ranks_above"
    grammar = r"""ranks_above: label "ranks" "above" label "in" expr"""

    higher: str
    lower: str
    source: ast.Node

    @classmethod
    def build(cls, children: list[Any]) -> RanksAbove:
        higher, lower, source = children
        return cls(ast.label_text(higher), ast.label_text(lower), source)

    def __str__(self) -> str:
        return (f"{ast.quote_if_needed(self.higher)} ranks above "
                f"{ast.quote_if_needed(self.lower)} in {self.source}")

    def evaluate(self, ctx: Context) -> Outcome:
        vector = _vector(ctx, self.source)
        a = float(vector.values[vector.axes[0].index_of(self.higher)])
        b = float(vector.values[vector.axes[0].index_of(self.lower)])
        rank = ranks(vector.values)
        passed = bool(np.isfinite(a) and np.isfinite(b) and a > b)
        rows = [{"label": lab, "value": val,
                 "rank": int(rank[vector.axes[0].index_of(lab)])}
                for lab, val in ((self.higher, a), (self.lower, b))]
        return Outcome(passed, f"{self.higher} = {fmt(a)}, {self.lower} = {fmt(b)}",
                       f"{self.higher} > {self.lower}", value=a - b, rows=rows,
                       plot_data={"labels": vector.labels_of(0),
                                  "values": vector.values.tolist(),
                                  "claimed": {self.higher: passed, self.lower: passed}})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """Sorted bars; both labels of every instance marked (templates included)."""
        from interp_assert.claims.template_plots import instances_note, merged_claims

        data = outcome.plot_data
        own = data.get("claimed", {self.higher: outcome.passed, self.lower: outcome.passed})
        claimed, failing, elsewhere = merged_claims(data, own)
        plot_ranking(ax, data["labels"], data["values"], claimed,
                     f"{self.source}: {self.higher} must rank above {self.lower}"
                     + instances_note(failing, elsewhere))


@register_claim
@dataclass
class ArgExtreme(Claim):
    """``argmax of Q over AXIS is L`` (or argmin)."""

    kind = "arg_extreme"
    grammar = r"""arg_extreme: ARG "of" expr "over" NAME "is" label
ARG: /arg(max|min)\b/"""

    which: str
    source: ast.Node
    axis: str
    expected_label: str

    @classmethod
    def build(cls, children: list[Any]) -> ArgExtreme:
        which, source, axis, label = children
        return cls(str(which), source, str(axis), ast.label_text(label))

    def __str__(self) -> str:
        return (f"{self.which} of {self.source} over {self.axis} is "
                f"{ast.quote_if_needed(self.expected_label)}")

    def evaluate(self, ctx: Context) -> Outcome:
        vector = _vector(ctx, self.source)
        vector.axis(self.axis)
        values = vector.values
        if not np.all(np.isfinite(values)):
            found, passed = "NaN", False
        else:
            index = int(np.argmax(values) if self.which == "argmax" else np.argmin(values))
            found = vector.axes[0].label(index)
            vector.axes[0].index_of(self.expected_label)  # unknown label -> clear error
            passed = found == self.expected_label
        labels = vector.labels_of(0)
        rows = [{"label": lab, "value": float(v), "is_expected": lab == self.expected_label}
                for lab, v in zip(labels, values)]
        expected_value = float(values[vector.axes[0].index_of(self.expected_label)])
        return Outcome(passed, f"{self.which} is {found}", f"{self.which} is {self.expected_label}",
                       value=expected_value, rows=rows,
                       plot_data={"labels": labels, "values": values.tolist(), "found": found})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.plots import (
            FAIL,
            HOLD,
            fill_patch,
            legend,
            nan_columns,
            nan_patch,
        )

        data = outcome.plot_data
        x = np.arange(len(data["labels"]))
        values = np.asarray(data["values"], dtype=float)
        expected = HOLD if outcome.passed else FAIL
        colors = [expected if lab == self.expected_label else
                  ("orange" if lab == data["found"] else "C0") for lab in data["labels"]]
        ax.bar(x, np.nan_to_num(values, nan=0.0), color=colors)
        ax.set_xticks(x, data["labels"], rotation=90 if len(x) > 20 else 0)
        handles = [fill_patch(expected, f"expected {self.which}: {self.expected_label}")]
        if not outcome.passed and data["found"] in data["labels"]:
            handles.append(fill_patch("orange", f"actual {self.which}: {data['found']}"))
        nan = np.flatnonzero(np.isnan(values)).tolist()
        if nan:
            nan_columns(ax, nan)
            handles.append(nan_patch("NaN (no argmax/argmin; never passes)"))
        legend(ax, handles)
        ax.set_title(f"{self.which} of {self.source}: expected {self.expected_label}, found "
                     f"{data['found']}", fontsize=9)
        ax.set_xlabel(self.axis)
