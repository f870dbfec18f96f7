"""``hn > 0.4 links L0H0, L0H1 to L0N90 [only]``: edges of a bipartite graph of scores.

The scores are a table ``[source, target]`` (the head→neuron scores of ``circuit:
head-neuron``, or any two-axis quantity); an edge is an entry passing the comparison (NaN
is no edge). Every listed source must have an edge to every listed target; with ``only``, no
other source may have an edge to a listed target. The value is the weakest listed edge (the
smallest score for ``>``/``>=``, the largest for ``<``/``<=``); a NaN among them never holds.
The plot draws the graph: sources left, targets right, listed edges green, missing ones red
dashed, edges ``only`` forbids red.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError, UnknownNameError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
MAX_DRAWN = 30
"""At most this many sources and targets are drawn (the listed ones first)."""


@register_claim
@dataclass
class Links(Claim):
    """Listed sources have edges (scores passing a threshold) to every listed target."""

    kind = "links"
    grammar = r"""links: expr CMP expr "links" members "to" members [LINKS_ONLY]
LINKS_ONLY: /only\b/"""

    scores: ast.Node
    op: str
    threshold: ast.Node
    sources: ast.Members
    targets: ast.Members
    only: bool = False

    @classmethod
    def build(cls, children: list[Any]) -> Links:
        scores, op, threshold, sources, targets, only = children
        return cls(scores, ast.comparison_op(op), threshold, sources, targets, only is not None)

    def __str__(self) -> str:
        return (f"{self.scores} {self.op} {self.threshold} links {self.sources} to "
                f"{self.targets}" + (" only" if self.only else ""))

    def evaluate(self, ctx: Context) -> Outcome:
        table = ctx.value(self.scores)
        if table.ndim != 2:
            raise QuantityError(f"'{self.scores}' must be a table [source, target] of scores "
                                f"(shape {table.shape})",
                                hint="e.g. a 'circuit: head-neuron' quantity")
        if self.op not in _OPS:
            raise QuantityError(f"'links' compares scores with <, <=, > or >=, not {self.op}")
        threshold = ctx.scalar(self.threshold)
        if math.isnan(threshold):
            raise QuantityError(f"the threshold '{self.threshold}' is NaN")
        rows, cols = table.labels_of(0), table.labels_of(1)
        src = [_position(table, label, 0, "source") for label in self.sources.labels]
        dst = [_position(table, label, 1, "target") for label in self.targets.labels]
        values = np.asarray(table.values, dtype=float)
        with np.errstate(invalid="ignore"):
            edges = _OPS[self.op](values, threshold) & np.isfinite(values)
        required = [(i, j) for i in src for j in dst]
        missing = [(i, j) for i, j in required if not edges[i, j]]
        extra = ([(i, j) for j in dst for i in np.flatnonzero(edges[:, j]) if i not in src]
                 if self.only else [])
        scores = [values[i, j] for i, j in required]
        weakest = (math.nan if any(math.isnan(s) for s in scores)
                   else (min(scores) if self.op in (">", ">=") else max(scores)))
        table_rows = ([{"source": rows[i], "target": cols[j], "score": float(values[i, j]),
                        "edge": bool(edges[i, j]), "holds": bool(edges[i, j])}
                       for i, j in required]
                      + [{"source": rows[int(i)], "target": cols[j],
                          "score": float(values[i, j]), "edge": True, "holds": False}
                         for i, j in extra])
        measured = (f"{len(required) - len(missing)} of {len(required)} listed edges pass; "
                    f"weakest {fmt(weakest)}")
        if self.only:
            measured += f"; {len(extra)} edge(s) from other sources"
        expected = (f"an edge ({self.op} {fmt(threshold)}) from each of {self.sources} to each "
                    f"of {self.targets}" + (", and from no other source" if self.only else ""))
        return Outcome(not missing and not extra, measured, expected, value=weakest,
                       rows=table_rows, plot_data=_graph(values, edges, rows, cols, src, dst,
                                                         missing, extra, threshold, self.op))

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """Sources left, targets right; every edge drawn, coloured by what the claim says."""
        from interp_assert.claims.plots import FAIL, HOLD, legend, nan_notice

        data = outcome.plot_data
        left, right = data["sources"], data["targets"]
        y_left = np.linspace(1, 0, len(left)) if len(left) > 1 else np.array([0.5])
        y_right = np.linspace(1, 0, len(right)) if len(right) > 1 else np.array([0.5])
        styles = {"listed": (HOLD, "-", "listed edge (passes)"),
                  "missing": (FAIL, "--", "listed edge missing (fails)"),
                  "forbidden": (FAIL, "-", "edge from another source ('only': fails)"),
                  "other": ("0.65", "-", "other edge")}
        top = max([abs(e[2]) for e in data["edges"] if math.isfinite(e[2])] or [1.0])
        seen: set[str] = set()
        for i, j, score, state in data["edges"]:
            color, style, label = styles[state]
            width = 0.8 + 3.0 * (abs(score) / top if math.isfinite(score) else 0.0)
            ax.plot([0, 1], [y_left[i], y_right[j]], color=color, linestyle=style,
                    linewidth=width, label=None if state in seen else label, zorder=2)
            seen.add(state)
        ax.scatter(np.zeros(len(left)), y_left, s=40, color="C0", zorder=3)
        ax.scatter(np.ones(len(right)), y_right, s=40, color="C1", zorder=3)
        for y, label in zip(y_left, left):
            ax.annotate(label, (0, y), xytext=(-6, 0), textcoords="offset points",
                        ha="right", va="center", fontsize=8)
        for y, label in zip(y_right, right):
            ax.annotate(label, (1, y), xytext=(6, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=8)
        if outcome.value is not None and not math.isfinite(outcome.value):
            nan_notice(ax, "a listed score is NaN: never passes", where=(0.5, 0.05))
        ax.set_xlim(-0.4, 1.4)
        ax.set_ylim(-0.08, 1.08)
        ax.axis("off")
        if seen:
            ax.legend(loc="upper center", fontsize=7, ncol=2, bbox_to_anchor=(0.5, -0.01))
        else:
            legend(ax, [], below=True)
        ax.set_title(f"edges: scores {data['op']} {fmt(data['threshold'])} (width ∝ |score|); "
                     f"{data['hidden']}", fontsize=9)


def _position(table: Any, label: str, axis: int, role: str) -> int:
    """Where ``label`` is on ``axis`` of the score table, or a clear error."""
    try:
        position = table.axes[axis].index_of(label)
    except UnknownNameError:
        position = -1
    if not 0 <= position < table.shape[axis]:
        names = table.labels_of(axis)
        raise QuantityError(f"{role} '{label}' is not on the {table.axes[axis].name} axis of "
                            f"'{table.name}' ({names[0]}..{names[-1]})",
                            hint=f"list {role}s from its {table.axes[axis].name} axis")
    return position


def _graph(values: np.ndarray, edges: np.ndarray, rows: list[str], cols: list[str],
           src: list[int], dst: list[int], missing: list[tuple[int, int]],
           extra: list[tuple[int, int]], threshold: float, op: str) -> dict[str, Any]:
    """The drawn nodes (listed first, then those with an edge to a drawn node) and edges."""
    shown_cols = list(dict.fromkeys(dst + [int(j) for j in np.flatnonzero(edges[src].any(0))]
                                    ))[:MAX_DRAWN]
    shown_rows = list(dict.fromkeys(src + [int(i) for i in
                                           np.flatnonzero(edges[:, shown_cols].any(1))]
                                    ))[:MAX_DRAWN]
    r_at = {r: k for k, r in enumerate(shown_rows)}
    c_at = {c: k for k, c in enumerate(shown_cols)}
    state: dict[tuple[int, int], str] = {}
    for i in shown_rows:
        for j in shown_cols:
            if edges[i, j]:
                state[(i, j)] = "other"
    state.update({(i, j): "listed" for i in src for j in dst if edges[i, j]})
    state.update({(i, j): "missing" for i, j in missing})
    state.update({(int(i), j): "forbidden" for i, j in extra})
    drawn = [(r_at[i], c_at[j], float(values[i, j]), s) for (i, j), s in state.items()
             if i in r_at and j in c_at]
    hidden = (f"{int(edges.sum())} edges in all; not drawn: {len(rows) - len(shown_rows)} "
              f"sources, {len(cols) - len(shown_cols)} targets")
    return {"sources": [rows[i] for i in shown_rows], "targets": [cols[j] for j in shown_cols],
            "edges": drawn, "threshold": threshold, "op": op, "hidden": hidden}


__all__ = ["Links"]
