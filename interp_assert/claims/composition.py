"""Composition claims, read from the weights:

* ``K-composition of L0H1 into L1H2 ≥ 0.2`` (Q-, K- or V-composition of a pair of heads);
* ``L0H1 → L1H2 ranks first in K-composition`` (or ``ranks in top 3``; ``->`` for →).

The scores are :func:`interp_assert.evaluate.circuit_scores.composition_scores`. This module
also defines the terminals ``CIRC_COMP`` and ``CIRC_ARROW`` that other circuit claims use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import parse_head
from interp_assert.evaluate.circuit_weights import weights_for
from interp_assert.labels import Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _head(label: str) -> tuple[int, int]:
    head = parse_head(label)
    if head is None:
        raise QuantityError(f"'{label}' is not a head label", hint="heads are L{layer}H{head}")
    return head


def _pairs(table: Labelled) -> list[tuple[int, int]]:
    """(writer, reader) index pairs whose writer is in an earlier layer."""
    labels = table.axes[0].labels or ()
    layers = [_head(label)[0] for label in labels]
    return [(i, j) for i in range(len(labels)) for j in range(len(labels))
            if layers[i] < layers[j]]


def _composition_plot(ax: Axes, outcome: Outcome, mode: str) -> None:
    """The composition heatmap: the claimed pair outlined red when the claim fails (black when
    it holds), the top pair dashed orange."""
    from interp_assert.claims.plots import CLAIMED, FAIL, heatmap, legend, nan_patch
    from interp_assert.claims.plots import outline_patch as outline

    data = outcome.plot_data
    labels = data["labels"]
    matrix = np.asarray(data["matrix"], dtype=float)
    color = CLAIMED if outcome.passed else FAIL
    pair = tuple(data["pair"])
    nan = heatmap(ax, matrix, labels, labels, vmin=0.0, outline=[pair],
                  annotate=len(labels) <= 8, outline_color=color)
    verdict = "holds" if outcome.passed else "fails"
    handles = [outline(color, f"claimed pair {labels[pair[0]]} → {labels[pair[1]]} "
                              f"({verdict})")]
    best = data.get("best")
    if best is not None and tuple(best) != pair:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False,
                               edgecolor="orange", linewidth=2, linestyle="--", zorder=5))
        handles.append(outline("orange", f"top pair {labels[best[0]]} → {labels[best[1]]}",
                               "--"))
    if nan:
        handles.append(nan_patch("NaN score (a zero OV or QK matrix)"))
    legend(ax, handles, below=True)
    ax.set_xlabel("reader head")
    ax.set_ylabel("writer head")
    ax.set_title(f"{mode}-composition scores (writer row → reader column)", fontsize=9)


CIRCUIT_TERMINALS = r"""
CIRC_COMP: /[QKV]-composition\b/
CIRC_ARROW: /→|->/"""


@register_claim
@dataclass
class Composition(Claim):
    """``K-composition of L0H1 into L1H2 ≥ 0.2``: the composition score of one pair of heads
    (zero unless the writer is in an earlier layer)."""

    kind = "composition"
    grammar = r"""composition: CIRC_COMP "of" label "into" label comparison""" + \
        CIRCUIT_TERMINALS

    mode: str
    writer: str
    reader: str
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> Composition:
        comp, writer, reader, comparison = children
        return cls(str(comp)[0], ast.label_text(writer), ast.label_text(reader), comparison)

    def __str__(self) -> str:
        return f"{self.mode}-composition of {self.writer} into {self.reader} {self.comparison}"

    def evaluate(self, ctx: Context) -> Outcome:
        table = weights_for(ctx).labelled(f"{self.mode}-composition")
        i, j = table.axes[0].index_of(self.writer), table.axes[1].index_of(self.reader)
        value = float(table.values[i, j])
        bound, upper = evaluate_bounds(ctx, self.comparison)
        passed = compare(value, self.comparison, bound, upper)
        pairs = sorted(_pairs(table), key=lambda p: -table.values[p])
        labels = table.labels_of(0)
        rank = 1 + sum(1 for p in pairs if table.values[p] > value)
        rows = [{"writer": labels[a], "reader": labels[b], "score": float(table.values[a, b]),
                 "rank": n + 1, "claimed": (a, b) == (i, j)}
                for n, (a, b) in enumerate(pairs[:10])]
        if (i, j) not in pairs[:10]:
            rows.append({"writer": self.writer, "reader": self.reader, "score": value,
                         "rank": rank, "claimed": True})
        outcome = Outcome(
            passed, f"{self.mode}-composition {self.writer} → {self.reader} = {fmt(value)} "
                    f"(rank {rank} of {len(pairs)} pairs)",
            expected_text(self.comparison, bound, upper), value=value, rows=rows,
            plot_data={"matrix": table.values.tolist(), "labels": labels, "pair": (i, j),
                       "best": pairs[0] if pairs else None})
        if _head(self.writer)[0] >= _head(self.reader)[0]:
            outcome.notes.append(f"{self.writer} is not in an earlier layer than "
                                 f"{self.reader}: their composition is 0 by definition")
        return outcome

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _composition_plot(ax, outcome, self.mode)


@register_claim
@dataclass
class CompositionRank(Claim):
    """``L0H1 → L1H2 ranks first in K-composition`` (or ``ranks in top 3``; optionally
    ``among all pairs``): rank among all pairs whose writer is in an earlier layer."""

    kind = "composition_rank"
    grammar = r"""
composition_rank: label CIRC_ARROW label "ranks" _comp_place [_comp_all] "in" CIRC_COMP
_comp_all: "among" "all" "pairs"
_comp_place: COMP_FIRST | "in" "top" INT
COMP_FIRST: /first\b/"""

    writer: str
    reader: str
    k: int
    mode: str

    @classmethod
    def build(cls, children: list[Any]) -> CompositionRank:
        writer, _arrow, reader, place, comp = [c for c in children if c is not None]
        k = 1 if str(place) == "first" else int(place)
        return cls(ast.label_text(writer), ast.label_text(reader), k, str(comp)[0])

    def __str__(self) -> str:
        place = "first" if self.k == 1 else f"in top {self.k}"
        return f"{self.writer} → {self.reader} ranks {place} in {self.mode}-composition"

    def evaluate(self, ctx: Context) -> Outcome:
        table = weights_for(ctx).labelled(f"{self.mode}-composition")
        i, j = table.axes[0].index_of(self.writer), table.axes[1].index_of(self.reader)
        pairs = sorted(_pairs(table), key=lambda p: -table.values[p])
        if (i, j) not in pairs:
            raise QuantityError(f"{self.writer} → {self.reader} is not a pair of heads in "
                                "successive layers", hint="the writer must be in an earlier "
                                                          "layer than the reader")
        value = float(table.values[i, j])
        rank = 1 + sum(1 for p in pairs if table.values[p] > value)
        labels = table.labels_of(0)
        rows = [{"rank": n + 1, "writer": labels[a], "reader": labels[b],
                 "score": float(table.values[a, b]), "claimed": (a, b) == (i, j)}
                for n, (a, b) in enumerate(pairs[:10])]
        top = pairs[0]
        measured = (f"{self.writer} → {self.reader} ranks {rank} of {len(pairs)} "
                    f"({self.mode}-composition {fmt(value)}; top {labels[top[0]]} → "
                    f"{labels[top[1]]} = {fmt(float(table.values[top]))})")
        place = "first" if self.k == 1 else f"within the top {self.k}"
        passed = rank <= self.k and math.isfinite(value)  # a NaN score (a zero-norm head)
        return Outcome(passed, measured, f"rank {place}", value=float(rank), rows=rows,
                       context={"score": fmt(value)},
                       plot_data={"matrix": table.values.tolist(), "labels": labels,
                                  "pair": (i, j), "best": top})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _composition_plot(ax, outcome, self.mode)
