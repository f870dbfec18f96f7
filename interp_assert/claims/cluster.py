"""``N1,N132,N204 cluster with cos > 0.5 [apart from N7, N9 [with cos < 0.2]]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, compare, fmt
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_OPPOSITE = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "!=", "!=": "=="}


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity between the rows of ``a`` and of ``b``."""
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    b_norm = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b.T) / (a_norm * b_norm.T)


@register_claim
@dataclass
class Cluster(Claim):
    """Every pair of members has cos beyond the threshold; ``apart from`` others stay below."""

    kind = "cluster"
    grammar = r"""cluster: members "cluster" "with" "cos" CMP expr [apart]
apart: "apart" "from" members ["with" "cos" CMP expr]"""

    members: ast.Members
    op: str
    threshold: ast.Node
    others: ast.Members | None = None
    others_op: str | None = None
    others_threshold: ast.Node | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Cluster:
        members, op, threshold, apart = children
        others = others_op = others_threshold = None
        if apart is not None:
            others, others_op, others_threshold = apart.children
        return cls(members, ast.comparison_op(op), threshold, others,
                   ast.comparison_op(others_op) if others_op else None, others_threshold)

    def __str__(self) -> str:
        text = f"{self.members} cluster with cos {self.op} {self.threshold}"
        if self.others is not None:
            text += f" apart from {self.others}"
            if self.others_op:
                text += f" with cos {self.others_op} {self.others_threshold}"
        return text

    def expressions(self):  # type: ignore[no-untyped-def]
        yield self.members
        yield self.threshold
        if self.others is not None:
            yield self.others
        if self.others_threshold is not None:
            yield self.others_threshold

    def evaluate(self, ctx: Context) -> Outcome:
        rows = ctx.members(self.members)
        if rows.ndim != 2:
            raise QuantityError(f"cluster members must be vectors; '{self.members}' gives shape "
                                f"{rows.shape}")
        if rows.shape[0] < 2:
            raise QuantityError("a cluster needs at least two members",
                                hint="list two or more labels before 'cluster'")
        labels = rows.labels_of(0)
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:  # a member paired with itself has cos 1: the claim could pass on it alone
            raise QuantityError(f"cluster member {', '.join(map(repr, repeated))} is listed "
                                "twice", hint="list each member once")
        cos = cosine_matrix(rows.values, rows.values)
        threshold = ctx.scalar(self.threshold)
        comparison = ast.Comparison(self.op, self.threshold)
        table = []
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                table.append({"a": labels[i], "b": labels[j], "cos": float(cos[i, j]),
                              "holds": compare(float(cos[i, j]), comparison, threshold)})
        pair_values = np.array([r["cos"] for r in table])
        word, worst_index = _worst_pair(pair_values, self.op, threshold)
        worst = table[worst_index]
        passed = all(r["holds"] for r in table)
        measured = (f"{word} pairwise cos "
                    f"{fmt(worst['cos'])} ({worst['a']}, {worst['b']}); "
                    f"{sum(not r['holds'] for r in table)} of {len(table)} pairs fail")
        expected = f"every pair cos {self.op} {fmt(threshold)}"
        value = float(worst["cos"])
        plot_rows = rows
        if self.others is not None:
            others = ctx.members(self.others)
            other_labels = others.labels_of(0)
            cross = cosine_matrix(others.values, rows.values)
            op = self.others_op or _OPPOSITE[self.op]
            bound = ctx.scalar(self.others_threshold) if self.others_threshold else threshold
            other_cmp = ast.Comparison(op, ast.Number(bound))
            for k, other in enumerate(other_labels):
                for i, member in enumerate(labels):
                    ok = compare(float(cross[k, i]), other_cmp, bound)
                    table.append({"a": other, "b": member, "cos": float(cross[k, i]),
                                  "holds": ok, "role": "apart"})
                    passed = passed and ok
            expected += f"; others' cos {op} {fmt(bound)}"
            apart_fail = sum(not r["holds"] for r in table if r.get("role") == "apart")
            measured += f"; {apart_fail} member/other pairs too close"
            plot_rows = _stack(rows, others)
        else:
            plot_rows = _with_neighbours(ctx, self.members, rows)
        failing = [(labels.index(r["a"]), labels.index(r["b"])) for r in table
                   if not r["holds"] and r.get("role") != "apart"]
        return Outcome(passed, measured, expected, value=value, rows=table,
                       plot_data={"labels": plot_rows.labels_of(0), "failing": failing,
                                  "cos": cosine_matrix(plot_rows.values, plot_rows.values),
                                  "n_members": len(labels), "threshold": threshold,
                                  "other_bound": bound if self.others is not None else None})

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """For a template: the cosines of every instance's members on one table, with each
        instance's failing pairs (and the pairs of holding instances) in its positions."""
        instances = outcome.plot_data.get("instances") or []
        if len(instances) < 2:
            return
        members = [inst["data"]["labels"][:inst["data"]["n_members"]] for inst in instances]
        union = list(dict.fromkeys(label for group in members for label in group))
        try:
            rows = ctx.members(ast.Members(tuple(union), self.members.source))
        except InterpAssertError:  # members of different quantities: the worst one is drawn
            return
        at = {label: k for k, label in enumerate(rows.labels_of(0))}
        failing, holding, tags = set(), set(), []
        for inst, group in zip(instances, members):
            if inst["holds"]:
                holding |= {(at[a], at[b]) for a in group for b in group if a != b}
                continue
            tags.append(str(inst["tag"]))
            names = inst["data"]["labels"]
            failing |= {cell for i, j in inst["data"]["failing"]
                        for cell in ((at[names[i]], at[names[j]]), (at[names[j]], at[names[i]]))}
        outcome.plot_data["union"] = {
            "labels": rows.labels_of(0), "cos": cosine_matrix(rows.values, rows.values),
            "failing": sorted(failing), "holding": sorted(holding - failing), "tags": tags}

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        if outcome.plot_data.get("union"):
            self._plot_union(outcome.plot_data, ax)
            return
        from matplotlib.patches import Rectangle

        from interp_assert.claims.plots import CLAIMED, FAIL, heatmap, legend, nan_patch
        from interp_assert.claims.plots import outline_patch as outline

        data = outcome.plot_data
        n, labels = data["n_members"], data["labels"]
        failing = [cell for i, j in data["failing"] for cell in ((i, j), (j, i))]
        apart = [(n + labels[n:].index(r["a"]), labels.index(r["b"])) for r in outcome.rows
                 if r.get("role") == "apart" and not r["holds"] and r["a"] in labels[n:]]
        apart = [cell for i, j in apart for cell in ((i, j), (j, i))]
        nan = heatmap(ax, data["cos"], labels, labels, vmin=-1, vmax=1, cmap="PRGn",
                      annotate=len(labels) <= 12)
        ax.add_patch(Rectangle((-0.5, -0.5), n, n, fill=False, edgecolor=CLAIMED, linewidth=2.5))
        for cells, style in ((failing, "-"), (apart, "--")):
            for i, j in cells:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=FAIL,
                                       linewidth=2.5, linestyle=style, zorder=5))
        threshold = fmt(data["threshold"])
        handles = [outline(CLAIMED, f"the {n} members")]
        if failing:
            handles.append(outline(FAIL, f"failing member pair (cos not {self.op} {threshold})"))
        if apart:
            handles.append(outline(FAIL, "member/other pair too close", "--"))
        if self.others is None and len(labels) > n:
            handles.append(outline("none", f"outside the box: the {len(labels) - n} nearest "
                                           "non-members (context)"))
        if nan:
            handles.append(nan_patch("NaN cos (a zero vector; never passes)"))
        legend(ax, handles, below=True)
        others = "" if self.others is None else (
            f"; others' cos {self.others_op or _OPPOSITE[self.op]} "
            f"{fmt(data.get('other_bound', data['threshold']))}")
        ax.set_title(f"cosine similarity of the members; every pair must have cos {self.op} "
                     f"{threshold}{others}", fontsize=9)


    def _plot_union(self, data: dict[str, Any], ax: Axes) -> None:
        """Every instance of a template on one heatmap: failing pairs outlined in red, the
        pairs of holding instances in black."""
        from interp_assert.claims.plots import FAIL, heatmap, legend, nan_patch
        from interp_assert.claims.plots import outline_patch as outline

        union = data["union"]
        failing = [tuple(cell) for cell in union["failing"]]
        holding = [tuple(cell) for cell in union["holding"]]
        nan = heatmap(ax, union["cos"], union["labels"], union["labels"], vmin=-1, vmax=1,
                      cmap="PRGn", annotate=len(union["labels"]) <= 12, outline=failing,
                      outline_color=FAIL)
        from matplotlib.patches import Rectangle

        for i, j in holding:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black",
                                   linewidth=2.5, linestyle="--", zorder=4))
        tags = union["tags"]
        shown = ", ".join(tags[:8]) + (", ..." if len(tags) > 8 else "")
        threshold = fmt(data["threshold"])
        handles = [outline(FAIL, f"failing pair (cos not {self.op} {threshold}): {shown}")]
        if holding:
            handles.append(outline("black", "pair of an instance that holds", "--"))
        if nan:
            handles.append(nan_patch("NaN cos (a zero vector; never passes)"))
        legend(ax, handles, below=True)
        ax.set_title(f"cosine similarity of every instance's members; {len(tags)} of "
                     f"{len(data['instances'])} instances fail (every pair must have cos "
                     f"{self.op} {threshold})", fontsize=9)


def _worst_pair(cos: np.ndarray, op: str, threshold: float) -> tuple[str, int]:
    """How the reported pair is chosen, and its index (NaN pairs count as the worst)."""
    if op in (">", ">="):
        return "min", int(np.argmin(cos))
    if op in ("<", "<="):
        return "max", int(np.argmax(cos))
    distance = np.abs(cos - threshold)
    if op == "==":
        return "furthest", int(np.argmax(distance))
    return "closest", int(np.argmin(distance))  # !=



def _stack(a: Any, b: Any) -> Any:
    from interp_assert.labels import Axis, Labelled

    labels = tuple(a.labels_of(0) + b.labels_of(0))
    return Labelled(np.vstack([a.values, b.values]), (Axis(a.axes[0].name, labels), *a.axes[1:]))


def _with_neighbours(ctx: Context, members: ast.Members, rows: Any, k: int = 5) -> Any:
    """The members plus the ``k`` non-members closest to them, for context in the heatmap."""
    source = ctx.members_source(members)
    if source is None or source.ndim != 2:
        return rows
    member_set = set(rows.labels_of(0))
    candidates = [i for i, lab in enumerate(source.labels_of(0)) if lab not in member_set]
    if not candidates:
        return rows
    sims = cosine_matrix(source.values[candidates], rows.values)
    closeness = np.nan_to_num(np.max(sims, axis=1), nan=-np.inf)
    nearest = [candidates[i] for i in np.argsort(-closeness)[:k]]
    return _stack(rows, source.take(0, nearest))
