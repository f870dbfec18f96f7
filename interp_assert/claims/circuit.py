"""Circuit claims, read from the weights:

* ``K-composition of L0H1 into L1H2 ≥ 0.2`` (Q-, K- or V-composition of a pair of heads);
* ``L0H1 → L1H2 ranks first in K-composition`` (or ``ranks in top 3``; ``->`` for →);
* ``effective rank of W_OV[L0H0] at 90% energy ≤ 4``;
* ``score(L1H0 → L2N108) above the 99.9th percentile of all head→neuron scores``;
* ``congruence of L1N5 with 7 ≥ 0.3`` (output congruence with token 7's unembedding;
  ``input congruence of L0N3 with W_E[7]``; ``... through layer norm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuits import (
    CircuitWeights,
    congruence,
    energy_rank,
    head_neuron_table,
    layer_norm_rows,
    parse_head,
    parse_neuron,
    quantiles,
    spectrum,
    weights_for,
)
from interp_assert.labels import Axis, Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from interp_assert.evaluate.evaluation import Evaluation


def _weights(ctx: Context) -> CircuitWeights:
    return weights_for(cast("Evaluation", ctx))



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


def _composition_plot(ax: Axes, data: dict[str, Any], title: str) -> None:
    from interp_assert.claims.plots import heatmap

    labels = data["labels"]
    matrix = np.asarray(data["matrix"])
    heatmap(ax, matrix, labels, labels, vmin=0.0, outline=[tuple(data["pair"])],
            annotate=len(labels) <= 8, outline_color="red")
    best = data.get("best")
    if best is not None and tuple(best) != tuple(data["pair"]):
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False,
                               edgecolor="orange", linewidth=2, linestyle="--"))
    ax.set_xlabel("reader head")
    ax.set_ylabel("writer head")
    ax.set_title(title, fontsize=9)


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
        table = _weights(ctx).labelled(f"{self.mode}-composition")
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
        _composition_plot(ax, outcome.plot_data,
                          f"{self.mode}-composition (claimed pair red, top pair orange)")


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
        table = _weights(ctx).labelled(f"{self.mode}-composition")
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
        return Outcome(rank <= self.k, measured, f"rank {place}", value=float(rank), rows=rows,
                       context={"score": fmt(value)},
                       plot_data={"matrix": table.values.tolist(), "labels": labels,
                                  "pair": (i, j), "best": top})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _composition_plot(ax, outcome.plot_data,
                          f"{self.mode}-composition (claimed pair red, top pair orange)")


@register_claim
@dataclass
class EffectiveRank(Claim):
    """``effective rank of W_OV[L0H0] at 90% energy ≤ 4``: the fewest singular values holding
    the fraction of the squared Frobenius norm."""

    kind = "effective_rank"
    grammar = r"""effective_rank: "effective" "rank" "of" expr "at" number "energy" comparison"""

    matrix: ast.Node
    energy: ast.Number
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> EffectiveRank:
        matrix, energy, comparison = children
        return cls(matrix, energy, comparison)

    def __str__(self) -> str:
        return f"effective rank of {self.matrix} at {self.energy} energy {self.comparison}"

    def evaluate(self, ctx: Context) -> Outcome:
        matrix = ctx.value(self.matrix)
        if matrix.ndim != 2:
            raise QuantityError(f"'{self.matrix}' has shape {matrix.shape}; the effective rank "
                                "needs one matrix", hint="index one head: W_OV[L0H0]")
        fraction = self.energy.value
        if not 0 < fraction <= 1:
            raise QuantityError(f"energy {self.energy} must be a fraction in (0, 1], e.g. 90%")
        singular = spectrum(matrix.values)
        k = energy_rank(singular, fraction)
        bound, upper = evaluate_bounds(ctx, self.comparison)
        passed = compare(float(k), self.comparison, bound, upper)
        energy = np.cumsum(singular**2) / np.sum(singular**2)
        rows = [{"index": f"S{i}", "singular value": float(s), "cumulative energy": float(e)}
                for i, (s, e) in enumerate(zip(singular[:20], energy[:20]))]
        measured = (f"{k} of {len(singular)} singular values hold {fmt(fraction)} of the energy "
                    f"(top {k}: {fmt(float(energy[k - 1]))})")
        return Outcome(passed, measured, expected_text(self.comparison, bound, upper),
                       value=float(k), rows=rows,
                       plot_data={"singular": singular.tolist(), "fraction": fraction, "k": k})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        singular = np.asarray(data["singular"])
        x = np.arange(len(singular))
        ax.bar(x, singular, color=["C3" if i < data["k"] else "C0" for i in x])
        ax.set_xlabel("singular value index")
        ax.set_ylabel("singular value")
        twin = ax.twinx()
        twin.plot(x, np.cumsum(singular**2) / np.sum(singular**2), "k.-", label="cumulative energy")
        twin.axhline(data["fraction"], color="k", linestyle="--",
                     label=f"energy {fmt(data['fraction'])}")
        twin.set_ylim(0, 1.05)
        twin.legend(loc="center right", fontsize=8)
        ax.set_title(f"spectrum of {self.matrix}: effective rank {data['k']}", fontsize=9)


@register_claim
@dataclass
class HeadNeuronScore(Claim):
    """``score(L1H0 → L2N108) above the 99.9th percentile of all head→neuron scores``.

    A head→neuron score is |cos| between a head's top output direction (right singular vector
    of W_OV; ``using top 3 directions``: the best of three) and the neuron's input direction
    (its W_in column), over every neuron in the head's layer or later."""

    kind = "head_neuron"
    grammar = r"""
head_neuron: "score" "(" label CIRC_ARROW label ")" "above" _hn_percentile [_hn_using]
_hn_percentile: "the" NUMBER HN_ORD "percentile" "of" "all" _hn_scores
_hn_using: "using" "top" INT "directions"
_hn_scores: "head" CIRC_ARROW "neuron" "scores" | "head-neuron" "scores"
HN_ORD: /(st|nd|rd|th)\b/"""

    head: str
    neuron: str
    percentile: float
    directions: int = 1

    @classmethod
    def build(cls, children: list[Any]) -> HeadNeuronScore:
        head, _a, neuron, number, _ord, *rest = children
        directions = next((int(c) for c in rest if c is not None and getattr(c, "type", "")
                           == "INT"), 1)
        return cls(ast.label_text(head), ast.label_text(neuron), float(number), directions)

    def __str__(self) -> str:
        number = ast.format_number(self.percentile)
        suffix = {"1": "st", "2": "nd", "3": "rd"}.get(number[-1], "th")
        if number.endswith(("11", "12", "13")):
            suffix = "th"
        using = f" using top {self.directions} directions" if self.directions != 1 else ""
        return (f"score({self.head} → {self.neuron}) above the {number}{suffix} percentile of "
                f"all head→neuron scores{using}")

    def evaluate(self, ctx: Context) -> Outcome:
        weights = _weights(ctx)
        scores = weights.head_neuron(self.directions)
        heads, neurons = weights.head_labels(), weights.neuron_labels()
        h = Axis("head", heads).index_of(self.head)
        n = Axis("neuron", neurons).index_of(self.neuron)
        value = float(scores[h, n])
        if not np.isfinite(value):
            raise QuantityError(f"{self.neuron} is in an earlier layer than {self.head}; the "
                                "head cannot write to it")
        if not 0 < self.percentile < 100:
            raise QuantityError("the percentile must be between 0 and 100")
        finite = scores[np.isfinite(scores)]
        threshold = float(np.quantile(finite, self.percentile / 100))
        below = float(np.mean(finite < value))
        table = head_neuron_table(weights, self.directions)
        table.sort(key=lambda row: -row["score"])
        rows = [{**row, "claimed": row["head"] == self.head and row["neuron"] == self.neuron}
                for row in table[:10]]
        levels = quantiles(finite)
        measured = (f"score({self.head} → {self.neuron}) = {fmt(value)}, above "
                    f"{below:.2%} of {finite.size} head→neuron scores")
        expected = f"> the {fmt(self.percentile)}th percentile = {fmt(threshold)}"
        context = {"quantiles": ", ".join(f"{k}: {fmt(v)}" for k, v in levels.items()),
                   "directions per head": self.directions}
        return Outcome(value > threshold, measured, expected, value=value, rows=rows,
                       context=context,
                       plot_data={"scores": finite.tolist(), "threshold": threshold,
                                  "value": value})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        ax.hist(data["scores"], bins=60, color="C0", log=True)
        ax.axvline(data["threshold"], color="k", linestyle="--",
                   label=f"{fmt(self.percentile)}th percentile {fmt(data['threshold'])}")
        ax.axvline(data["value"], color="C3", linewidth=2,
                   label=f"{self.head} → {self.neuron} {fmt(data['value'])}")
        ax.set_xlabel("head→neuron score |cos(W_OV output direction, W_in)|")
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8)


@register_claim
@dataclass
class Congruence(Claim):
    """``congruence of L1N5 with 7 ≥ 0.3``: cosine of each neuron's output direction (W_out
    row; ``input congruence``: its W_in column) with a direction. A number names a token: its
    unembedding column (output) or embedding row (input). ``through layer norm`` applies a
    parameter-free layer norm to the side that writes to the residual stream."""

    kind = "congruence"
    grammar = r"""
congruence: [CONG_SIDE] "congruence" "of" _cong_labels "with" expr [CONG_LN] comparison
_cong_labels: label ("," label)*
CONG_SIDE: /(input|output)\b/
CONG_LN: /through\s+(layer\s+norm|ln)\b/"""

    neurons: tuple[str, ...]
    target: ast.Node
    comparison: ast.Comparison
    side: str = "output"
    layer_norm: bool = False

    @classmethod
    def build(cls, children: list[Any]) -> Congruence:
        side, *labels, target, ln, comparison = children
        return cls(tuple(ast.label_text(label) for label in labels), target, comparison,
                   str(side) if side is not None else "output", ln is not None)

    def __str__(self) -> str:
        side = "input " if self.side == "input" else ""
        ln = " through layer norm" if self.layer_norm else ""
        return (f"{side}congruence of {', '.join(self.neurons)} with {self.target}{ln} "
                f"{self.comparison}")

    def scores(self, ctx: Context) -> Labelled:
        """Every neuron's congruence with the target."""
        weights = _weights(ctx)
        if isinstance(self.target, ast.Number):
            token = int(self.target.value)
            name = "W_U" if self.side == "output" else "W_E"
            matrix = weights.labelled(name).values
            vector = matrix[:, token] if self.side == "output" else matrix[token]
            target = Labelled(vector, (Axis("d_model"),), f"{name}[{token}]")
        else:
            target = ctx.value(self.target)
        if target.ndim != 1:
            raise QuantityError(f"'{self.target}' has shape {target.shape}; congruence needs "
                                "one direction")
        directions = weights.labelled("W_out" if self.side == "output" else "W_in")
        if self.layer_norm and self.side == "output":
            directions = layer_norm_rows(directions, directions.ndim - 1)
        if self.layer_norm and self.side == "input":
            target = layer_norm_rows(target, 0)
        return congruence(directions, target)

    def evaluate(self, ctx: Context) -> Outcome:
        for label in self.neurons:
            if parse_neuron(label) is None:
                raise QuantityError(f"'{label}' is not a neuron label", hint="L{layer}N{i}")
        scores = self.scores(ctx)
        bound, upper = evaluate_bounds(ctx, self.comparison)
        rows, values = [], {}
        for label in self.neurons:
            value = float(scores.values[scores.axes[0].index_of(label)])
            values[label] = value
            rank = 1 + int(np.sum(scores.values > value))
            rows.append({"neuron": label, "congruence": value, "rank": rank,
                         "holds": compare(value, self.comparison, bound, upper)})
        passed = all(row["holds"] for row in rows)
        worst = next((r for r in rows if not r["holds"]), rows[0])
        measured = ", ".join(f"{r['neuron']} = {fmt(r['congruence'])} (rank {r['rank']})"
                             for r in rows)
        return Outcome(passed, measured, expected_text(self.comparison, bound, upper),
                       value=worst["congruence"], rows=rows,
                       plot_data={"labels": scores.labels_of(0), "values": scores.values.tolist(),
                                  "bound": bound, "upper": upper})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        labels, values = data["labels"], np.asarray(data["values"])
        layers = np.array([(parse_neuron(label) or (0, 0))[0] for label in labels], dtype=float)
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=len(labels))
        ax.scatter(layers + jitter, values, s=8, color="C0", alpha=0.6)
        for label in self.neurons:
            i = labels.index(label)
            ax.scatter(layers[i] + jitter[i], values[i], s=40, color="C3", zorder=3)
            ax.annotate(label, (layers[i] + jitter[i], values[i]), fontsize=8, color="C3",
                        xytext=(4, 4), textcoords="offset points")
        for key, style in (("bound", "--"), ("upper", ":")):
            if data.get(key) is not None:
                ax.axhline(data[key], color="k", linestyle=style)
        ax.set_xticks(sorted(set(layers)), [f"layer {int(v)}" for v in sorted(set(layers))])
        ax.set_ylabel(f"{self.side} congruence with {self.target}")
        ax.grid(axis="y", alpha=0.3)
