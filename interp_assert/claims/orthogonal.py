"""``N1, N132 orthogonal within 0.1``: directions that do not share a component.

Every pair of members has |cos| at most the tolerance (pairs whose cosine is NaN, a zero
vector, fail). The worked example of a new claim kind: this file plus its line in
``claims/builtin.py``; see docs/architecture.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.cluster import cosine_matrix
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@register_claim
@dataclass
class Orthogonal(Claim):
    """Every pairwise |cos| of the members is at most the tolerance."""

    kind = "orthogonal"
    grammar = 'orthogonal: members "orthogonal" "within" expr'

    members: ast.Members
    tolerance: ast.Node

    @classmethod
    def build(cls, children: list[Any]) -> Orthogonal:
        members, tolerance = children
        return cls(members, tolerance)

    def __str__(self) -> str:
        return f"{self.members} orthogonal within {self.tolerance}"

    def evaluate(self, ctx: Context) -> Outcome:
        rows = ctx.members(self.members)
        if rows.ndim != 2 or rows.shape[0] < 2:
            raise QuantityError(f"'{self.members}' must name two or more vectors (shape "
                                f"{rows.shape})", hint="list two or more labels")
        tolerance = ctx.scalar(self.tolerance)
        if not math.isfinite(tolerance) or tolerance < 0:
            raise QuantityError(f"the tolerance must be a number >= 0, not {fmt(tolerance)}")
        labels = rows.labels_of(0)
        overlap = np.abs(cosine_matrix(rows.values, rows.values))
        table = [{"a": labels[i], "b": labels[j], "|cos|": float(overlap[i, j]),
                  "holds": bool(overlap[i, j] <= tolerance)}
                 for i in range(len(labels)) for j in range(i + 1, len(labels))]
        worst = max(table, key=lambda r: math.inf if math.isnan(r["|cos|"]) else r["|cos|"])
        failing = [r for r in table if not r["holds"]]
        measured = (f"max |cos| {fmt(worst['|cos|'])} ({worst['a']}, {worst['b']}); "
                    f"{len(failing)} of {len(table)} pairs overlap")
        cells = [(labels.index(r["a"]), labels.index(r["b"])) for r in failing]
        return Outcome(not failing, measured, f"every pair |cos| <= {fmt(tolerance)}",
                       value=worst["|cos|"], rows=table,
                       plot_data={"labels": labels, "overlap": overlap, "failing": cells,
                                  "tolerance": tolerance})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.plots import FAIL, heatmap, legend, nan_patch, outline_patch

        data = outcome.plot_data
        cells = [cell for i, j in data["failing"] for cell in ((i, j), (j, i))]
        pairs = np.array(data["overlap"], dtype=float)
        np.fill_diagonal(pairs, np.nan)  # a member with itself is not a pair
        nan = heatmap(ax, pairs, data["labels"], data["labels"], vmin=0, vmax=1,
                      cmap="Blues", outline=cells, outline_color=FAIL,
                      annotate=len(data["labels"]) <= 12, blank=np.eye(len(pairs), dtype=bool))
        tolerance = fmt(data["tolerance"])
        handles = [outline_patch(FAIL, f"failing pair: |cos| over {tolerance}")] if cells else []
        if nan:
            handles.append(nan_patch("NaN |cos| (a zero vector; never passes)"))
        legend(ax, handles, below=True)
        ax.set_title(f"|cos| between members (diagonal: a member with itself, blank); every "
                     f"pair must have |cos| <= {tolerance}", fontsize=9)
