"""``K-composition of L0H1 into L1H2 beats 9 random pairs with 90% confidence``: the composition
score of the claimed pair of heads against the scores of K random pairs, by a Monte-Carlo rank
test (:mod:`interp_assert.evaluate.rank_test`).

The K random pairs are drawn without replacement (``numpy.random.default_rng(0).choice``) from
every other (writer, reader) pair whose writer is in an earlier layer, so that, if the claimed
pair were itself a uniformly drawn pair, the K + 1 scores would be exchangeable and
``p = (1 + #{random scores ≥ claimed}) / (1 + K)`` exact. With ``with C% confidence`` the claim
holds when ``p ≤ 1 − C``; without, when the claimed score is above every random one (rank 1).
The scores are :func:`interp_assert.evaluate.circuit_scores.composition_scores` (as for
``K-composition of ... ≥ x``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.composition import _head, _pairs
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_weights import weights_for
from interp_assert.evaluate.rank_test import check_draws, rank_test
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SEED = 0


@register_claim
@dataclass
class CompositionRandom(Claim):
    """``K-composition of L0H1 into L1H2 beats 9 random pairs with 90% confidence``."""

    kind = "composition_random"
    grammar = r"""composition_random: CIRC_COMP "of" label "into" label "beats" INT "random" "pairs" [confidence]"""  # noqa: E501

    mode: str
    writer: str
    reader: str
    draws: int
    confidence: float | None = None

    @classmethod
    def build(cls, children: list[Any]) -> CompositionRandom:
        comp, writer, reader, draws, confidence = children
        return cls(str(comp)[0], ast.label_text(writer), ast.label_text(reader), int(draws),
                   ast.confidence_level(confidence))

    def __str__(self) -> str:
        text = (f"{self.mode}-composition of {self.writer} into {self.reader} beats "
                f"{self.draws} random pairs")
        if self.confidence is not None:
            text += f" with {ast.Number(self.confidence, '%')} confidence"
        return text

    def evaluate(self, ctx: Context) -> Outcome:
        if self.draws < 1:
            raise QuantityError("compare with at least 1 random pair",
                                hint="write 'beats 19 random pairs with 95% confidence'")
        table = weights_for(ctx).labelled(f"{self.mode}-composition")
        i, j = table.axes[0].index_of(self.writer), table.axes[1].index_of(self.reader)
        if _head(self.writer)[0] >= _head(self.reader)[0]:
            raise QuantityError(f"{self.writer} is not in an earlier layer than {self.reader}: "
                                "their composition is 0 by definition",
                                hint="the writer must be in an earlier layer than the reader")
        others = [pair for pair in _pairs(table) if pair != (i, j)]
        if self.draws > len(others):
            raise QuantityError(f"the model has only {len(others)} other pairs of heads in "
                                f"successive layers, not {self.draws}",
                                hint=f"write 'beats {len(others)} random pairs' at most")
        if self.confidence is not None:
            check_draws(self.draws, self.confidence, "random pairs",
                        f"write 'beats {{n}} random pairs with {self.confidence:.0%} confidence'"
                        f" (the model has {len(others)} other pairs; with K of them the "
                        "confidence is at most 1 − 1/(K+1))")
        picked = np.random.default_rng(SEED).choice(len(others), size=self.draws, replace=False)
        pairs = [others[int(k)] for k in picked]
        value = float(table.values[i, j])
        scores = [float(table.values[p]) for p in pairs]
        test = rank_test(value, scores)
        passed = (test.holds(self.confidence) if self.confidence is not None
                  else test.rank == 1) and math.isfinite(value)
        labels = table.labels_of(0)
        rows = [{"writer": self.writer, "reader": self.reader, "score": value,
                 "claimed": True, "at least as high": False}]
        rows += [{"writer": labels[a], "reader": labels[b], "score": s, "claimed": False,
                  "at least as high": bool(not s < value)} for (a, b), s in zip(pairs, scores)]
        spread = np.asarray(scores)
        measured = (f"{self.mode}-composition {self.writer} → {self.reader} = {fmt(value)}, "
                    f"{test.text()} among {self.draws} random pairs (random: mean "
                    f"{fmt(float(spread.mean()))}, max {fmt(float(spread.max()))})")
        expected = (f"a rank p-value ≤ {1 - self.confidence:.3g} ({self.confidence:.0%} "
                    "confidence)" if self.confidence is not None
                    else "above every random pair (rank 1)")
        outcome = Outcome(passed, measured, expected, value=value, rows=rows,
                          context={"random pairs": f"{self.draws} of {len(others)} other "
                                                   f"pairs, seed {SEED}, without replacement"},
                          plot_data={"scores": scores, "value": value, "rank": test.text(),
                                     "pair": f"{self.writer} → {self.reader}"})
        if self.confidence is not None:
            outcome.p_value = test.p_value
            outcome.meta["rank_test"] = {"rank": test.rank, "draws": test.k,
                                         "p_value": test.p_value, "confidence": self.confidence}
        return outcome

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.plots import CLAIMED, FAIL

        data = outcome.plot_data
        scores = np.asarray(data["scores"], dtype=float)
        ax.hist(scores[np.isfinite(scores)], bins=min(20, max(3, scores.size)), color="C0",
                alpha=0.7, label=f"{scores.size} random pairs")
        color = CLAIMED if outcome.passed else FAIL
        if math.isfinite(data["value"]):
            ax.axvline(data["value"], color=color, linewidth=2,
                       label=f"{data['pair']} {fmt(data['value'])} ({data['rank']})")
        ax.set_xlabel(f"{self.mode}-composition score")
        ax.set_ylabel("random pairs")
        ax.legend(fontsize=8)
        ax.set_title(f"{self.mode}-composition of {data['pair']} against random pairs",
                     fontsize=9)
