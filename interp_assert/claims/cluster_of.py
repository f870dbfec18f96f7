"""``the cluster of N1 at |cos| > 0.5 includes N132, N204 and excludes N79``: a cluster found
from an exemplar instead of listed.

The cluster of an exemplar row is every row of its quantity whose cosine with the exemplar
(``|cos|``: its absolute value) passes the threshold, the exemplar included. The claim holds when
every listed member is in it and no excluded one is. The recorded value is the weakest listed
member's (|)cos(|) with the exemplar. The plot orders the found cluster and the listed rows by
hierarchical clustering (scipy's average linkage on 1 − cos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.cluster import cosine_matrix
from interp_assert.claims.outcome import Outcome, compare, fmt
from interp_assert.errors import QuantityError
from interp_assert.labels import Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: rows drawn at most (the found cluster may be large)
MAX_DRAWN = 40


@register_claim
@dataclass
class ClusterOf(Claim):
    """The rows whose cosine with an exemplar passes a threshold include and exclude labels."""

    kind = "cluster_of"
    grammar = r"""cluster_of: "the" "cluster" "of" members "at" COS_WORD CMP expr _cluster_sides
_cluster_sides: "includes" members ["and" "excludes" members]
COS_WORD: /\|cos\||abs\(cos\)|cos\b/"""

    exemplar: ast.Members
    absolute: bool
    op: str
    threshold: ast.Node
    includes: ast.Members
    excludes: ast.Members | None = None

    @classmethod
    def build(cls, children: list[Any]) -> ClusterOf:
        exemplar, word, op, threshold, includes, excludes = children
        return cls(exemplar, str(word) != "cos", ast.comparison_op(op), threshold, includes,
                   excludes)

    def __str__(self) -> str:
        word = "|cos|" if self.absolute else "cos"
        text = (f"the cluster of {self.exemplar} at {word} {self.op} {self.threshold} "
                f"includes {self.includes}")
        return text + (f" and excludes {self.excludes}" if self.excludes is not None else "")

    def expressions(self):  # type: ignore[no-untyped-def]
        yield self.exemplar
        yield self.threshold
        yield self.includes
        if self.excludes is not None:
            yield self.excludes

    def evaluate(self, ctx: Context) -> Outcome:
        if len(self.exemplar.labels) != 1:
            raise QuantityError(f"the cluster of '{self.exemplar}' needs one exemplar",
                                hint="name one row, e.g. 'the cluster of N1 at |cos| > 0.5'")
        rows = _candidate_rows(ctx, self.exemplar)
        labels = rows.labels_of(0)
        exemplar = labels.index(self.exemplar.labels[0])
        cos = cosine_matrix(rows.values[exemplar:exemplar + 1], rows.values)[0]
        score = np.abs(cos) if self.absolute else cos
        threshold = ctx.scalar(self.threshold)
        comparison = ast.Comparison(self.op, self.threshold)
        inside = np.array([compare(float(s), comparison, threshold) for s in score])
        inside[exemplar] = True
        position = {label: i for i, label in enumerate(labels)}
        table, wanted, unwanted = [], list(self.includes.labels), list(
            self.excludes.labels if self.excludes is not None else ())
        for label in wanted + unwanted:
            if label not in position:
                raise QuantityError(f"'{label}' is not a row of the exemplar's quantity "
                                    f"(rows {labels[0]}..{labels[-1]})")
            i = position[label]
            role = "includes" if label in wanted else "excludes"
            ok = bool(inside[i]) if role == "includes" else not inside[i]
            table.append({"row": label, "role": role, "cos": float(cos[i]),
                          "in cluster": bool(inside[i]), "holds": ok})
        found = [labels[i] for i in np.flatnonzero(inside)]
        missing = [r["row"] for r in table if r["role"] == "includes" and not r["holds"]]
        intruders = [r["row"] for r in table if r["role"] == "excludes" and not r["holds"]]
        weakest = min((float(score[position[label]]) for label in wanted), default=math.nan)
        if any(math.isnan(float(score[position[label]])) for label in wanted):
            weakest = math.nan
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10
                                         else "")
        measured = f"the cluster has {len(found)} rows: {shown}"
        if missing:
            measured += f"; missing {', '.join(missing)}"
        if intruders:
            measured += f"; wrongly in it {', '.join(intruders)}"
        word = "|cos|" if self.absolute else "cos"
        expected = (f"{word} {self.op} {fmt(threshold)} with {self.exemplar.labels[0]} for "
                    f"{', '.join(wanted)}" + (f", not for {', '.join(unwanted)}" if unwanted
                                               else ""))
        drawn = list(dict.fromkeys([labels[exemplar], *wanted, *unwanted, *found]))[:MAX_DRAWN]
        index = [position[label] for label in drawn]
        return Outcome(not missing and not intruders, measured, expected, value=weakest,
                       rows=table,
                       plot_data={"labels": drawn, "failing": missing + intruders,
                                  "cos": cosine_matrix(rows.values[index], rows.values[index]),
                                  "members": found, "absolute": self.absolute})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from matplotlib.patches import Patch

        from interp_assert.claims.plots import heatmap

        data = outcome.plot_data
        order = linkage_order(np.asarray(data["cos"], dtype=float))
        labels = [data["labels"][i] for i in order]
        matrix = np.asarray(data["cos"], dtype=float)[np.ix_(order, order)]
        failing = {labels.index(label) for label in data["failing"]}
        outline = [(i, j) for i in failing for j in range(len(labels))]
        heatmap(ax, np.abs(matrix) if data["absolute"] else matrix, labels, labels,
                vmin=0 if data["absolute"] else -1, vmax=1, cmap="RdBu_r",
                outline=outline, outline_color="red", annotate=len(labels) <= 12)
        members = set(data["members"])
        for tick in ax.get_yticklabels():
            tick.set_fontweight("bold" if tick.get_text() in members else "normal")
        ax.legend(handles=[Patch(fill=False, edgecolor="red",
                                 label="listed row on the wrong side"),
                           Patch(color="white", label="bold: in the found cluster")],
                  loc="upper right", fontsize=8)
        ax.set_title("cosine, ordered by hierarchical clustering (average linkage)",
                     fontsize=9)


def _candidate_rows(ctx: Context, exemplar: ast.Members) -> Labelled:
    """Every row of the quantity the exemplar belongs to, rows first."""
    source = ctx.members_source(exemplar)
    if source is None:
        return ctx.members(exemplar)  # reports the unknown label
    axis = source.find_label(exemplar.labels[0])
    if source.ndim != 2:
        raise QuantityError(f"the cluster of '{exemplar.labels[0]}' needs vectors; its "
                            f"quantity has shape {source.shape}")
    if axis == 1:
        source = Labelled(source.values.T, source.axes[::-1], source.name)
    return source


def linkage_order(cos: np.ndarray) -> list[int]:
    """Leaf order of scipy's average-linkage clustering on the distance ``1 − cos`` (NaN as the
    largest distance, 2)."""
    if len(cos) < 3:
        return list(range(len(cos)))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    distance = np.nan_to_num(1 - np.asarray(cos, dtype=float), nan=2.0)
    distance = np.clip((distance + distance.T) / 2, 0, 2)
    np.fill_diagonal(distance, 0)
    return [int(i) for i in leaves_list(linkage(squareform(distance), method="average"))]
