"""Circuit claims, read from the weights:

* ``effective rank of W_OV[L0H0] at 90% energy ≤ 4``;
* ``score(L1H0 → L2N108) above the 99.9th percentile of all head→neuron scores``;
* ``congruence of L1N5 with 7 ≥ 0.3`` (output congruence with token 7's unembedding;
  ``input congruence of L0N3 with W_E[7]``; ``... through layer norm``).

Composition claims (``K-composition of L0H1 into L1H2 ≥ 0.2``, ``L0H1 → L1H2 ranks first in
K-composition``) are in :mod:`interp_assert.claims.composition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# composition registers first (as when it lived here) and defines CIRC_ARROW, which the
# head_neuron grammar uses
from interp_assert.claims import composition  # noqa: F401
from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import parse_neuron
from interp_assert.evaluate.circuit_scores import (
    congruence,
    energy_rank,
    layer_norm_rows,
    nonzero_count,
    quantiles,
    spectrum,
)
from interp_assert.evaluate.circuit_weights import head_neuron_table, weights_for
from interp_assert.labels import Axis, Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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
        try:
            k = energy_rank(singular, fraction)
        except QuantityError as exc:
            raise QuantityError(f"'{self.matrix}': {exc.message}", hint=exc.hint) from None
        bound, upper = evaluate_bounds(ctx, self.comparison)
        passed = compare(float(k), self.comparison, bound, upper)
        energy = np.cumsum(singular**2) / np.sum(singular**2)
        rows = [{"index": f"S{i}", "singular value": float(s), "cumulative energy": float(e)}
                for i, (s, e) in enumerate(zip(singular[:20], energy[:20]))]
        nonzero = nonzero_count(singular, matrix.shape)
        measured = (f"{k} of {len(singular)} singular values ({nonzero} nonzero) hold "
                    f"{fmt(fraction)} of the energy (top {k}: {fmt(float(energy[k - 1]))})")
        return Outcome(passed, measured, expected_text(self.comparison, bound, upper),
                       value=float(k), rows=rows,
                       plot_data={"singular": singular.tolist(), "fraction": fraction, "k": k,
                                  "nonzero": nonzero, "bound": bound, "upper": upper,
                                  "op": self.comparison.op})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.circuit_plots import plot_spectrum

        plot_spectrum(ax, outcome, str(self.matrix))


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
        weights = weights_for(ctx)
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
        from interp_assert.claims.plots import FAIL, HOLD

        data = outcome.plot_data
        ax.hist(data["scores"], bins=60, color="C0", log=True, label="all head→neuron pairs")
        ax.axvline(data["threshold"], color="k", linestyle="--",
                   label=f"{fmt(self.percentile)}th percentile {fmt(data['threshold'])}")
        verdict = "holds" if outcome.passed else "fails"
        ax.axvline(data["value"], color=HOLD if outcome.passed else FAIL, linewidth=2,
                   label=f"claimed {self.head} → {self.neuron} {fmt(data['value'])} "
                         f"({verdict})")
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
        weights = weights_for(ctx)
        if isinstance(self.target, ast.Number):
            name = "W_U" if self.side == "output" else "W_E"
            matrix = weights.labelled(name).values
            vocabulary = matrix.shape[1] if self.side == "output" else matrix.shape[0]
            token = self.target.value
            if token != int(token) or not 0 <= token < vocabulary:
                raise QuantityError(f"token {self.target} is not a token id of {name} (ids "
                                    f"0..{vocabulary - 1})", hint="give a token id of the "
                                    "vocabulary, or a direction (an expression)")
            token = int(token)
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
        from interp_assert.claims.circuit_plots import plot_congruence

        plot_congruence(ax, outcome, self.neurons, f"{self.side} congruence with {self.target}",
                        self.comparison.op)
