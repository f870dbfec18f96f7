"""``logit lens at blocks.1: rank of the answer at A3 ≤ 3 on 90% of samples``: the residual
stream after a block, read through the model's own final norm and unembedding.

Per sample, the answer token's ``probability``, ``rank`` (1 = the top token), ``logit`` or
``logit-diff`` (minus the token in a dataset field, ``vs FIELD``, else minus the mean logit) at
the lens's residual stream. Two forms: the fraction of samples meeting a per-sample condition
(``on 90% of samples``, Wilson interval) and a mean (``mean probability of the answer ... ≥
0.5``, bootstrap interval). The failure plot draws the same number after every block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from interp_assert.claims.base import Claim, Context, planned_dataset, register_claim
from interp_assert.claims.compare import evaluate_bounds, judged_value
from interp_assert.claims.interval_pvalues import lens_p
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
        "==": np.equal, "!=": np.not_equal}


@register_claim
@dataclass
class LogitLens(Claim):
    """A statistic of the answer token read through the final norm and unembedding from a
    residual stream, over the samples of the claim's dataset."""

    kind = "logit_lens"
    #: a template's instances each plan their sinks, so one pass serves every instance
    plans_instances: ClassVar[bool] = True
    grammar = r"""
logit_lens: "logit" "lens" "at" NAME ":" (lens_share | lens_mean)
lens_share: LENS_STAT _lens_answer CMP expr "on" number "of" "samples" [confidence]
lens_mean: "mean" LENS_STAT _lens_answer comparison
_lens_answer: "of" "the" "answer" [lens_vs] [lens_at]
lens_vs: "vs" NAME
lens_at: "at" label
LENS_STAT: /(probability|rank|logit-diff|logit)(?![\w-])/"""

    where: str
    stat: str
    contrast: str | None
    answer: str | None
    #: the per-sample condition (share form) or the mean's comparison
    comparison: ast.Comparison
    #: the share form's fraction of samples (None: the mean form)
    fraction: ast.Number | None = None

    @classmethod
    def build(cls, children: list[Any]) -> LogitLens:
        where, body = children
        parts = list(body.children)
        if body.data == "lens_share":
            stat, contrast, at, op, bound, fraction, confidence = parts
            comparison = ast.Comparison(ast.comparison_op(op), bound,
                                        confidence=ast.confidence_level(confidence))
        else:
            stat, contrast, at, comparison = parts
            fraction = None
        if fraction is not None and not 0 <= fraction.value <= 1:
            from interp_assert.errors import ClaimSyntaxError

            raise ClaimSyntaxError(f"'{fraction}' of samples is not a share between 0% and "
                                   "100%", "", max(1, fraction.column),
                                   hint="write e.g. 'on 90% of samples'")
        return cls(str(where), str(stat), str(contrast.children[0]) if contrast else None,
                   at.children[0][0] if at else None, comparison, fraction)

    def _answer_text(self) -> str:
        text = f"{self.stat} of the answer"
        text += f" vs {self.contrast}" if self.contrast else ""
        return text + (f" at {self.answer}" if self.answer else "")

    def __str__(self) -> str:
        head = f"logit lens at {self.where}: "
        if self.fraction is None:
            return f"{head}mean {self._answer_text()} {self.comparison}"
        condition = f"{self.comparison.op} {self.comparison.value}"
        confidence = ""
        if self.comparison.confidence is not None:
            level = ast.Number(self.comparison.confidence, "%")
            confidence = f" with {level} confidence"
        return f"{head}{self._answer_text()} {condition} on {self.fraction} of samples{confidence}"

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        from interp_assert.evaluate.logit_readout import readout_sink, resid_hook

        spec = planned_dataset(claim_file, dataset)
        if spec is None:
            return []
        key, make = readout_sink(spec, resid_hook(self.where), self.answer, self.contrast)
        return [(dataset, key, make)]

    def per_sample(self, ctx: Context, hook: str) -> np.ndarray:
        """The statistic of every sample at ``hook``."""
        from interp_assert.evaluate.logit_readout import lens_logits, lens_statistic, read

        spec = ctx.dataset_spec(ctx.dataset)
        data = read(ctx, spec, hook, self.answer, self.contrast)
        if data["values"].ndim != 2:
            raise QuantityError(f"'{hook}' has shape {data['values'].shape[1:]} per position; "
                                "a logit lens reads a residual stream [batch, pos, d_model]",
                                hint="name a block (blocks.1) or a hook_resid_* hook point")
        logits = lens_logits(ctx.subject.model, data["values"])
        return lens_statistic(logits, data["answers"], data["contrasts"], self.stat)

    def headline(self, values: np.ndarray, bound: float, upper: float | None
                 ) -> tuple[float, tuple[float, float]]:
        """(the judged number, its interval): the share of samples meeting the condition, or
        the mean."""
        from interp_assert.evaluate.stats import bootstrap_mean, wilson

        level = self.comparison.confidence or 0.95
        if self.fraction is None:
            return float(np.mean(values)), bootstrap_mean(values, level)
        with np.errstate(invalid="ignore"):
            ok = _OPS[self.comparison.op](values, bound) & np.isfinite(values)
        return float(ok.mean()), wilson(int(ok.sum()), ok.size, level)

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.evaluate.logit_readout import resid_hook

        if self.comparison.op in ("in", "≈") and self.fraction is not None:
            raise QuantityError("a per-sample condition takes <, <=, >, >=, == or !=")
        bound, upper = evaluate_bounds(ctx, self.comparison)
        values = self.per_sample(ctx, resid_hook(self.where))
        value, interval = self.headline(values, bound, upper)
        judged = judged_value(value, interval, self.comparison)
        level = self.comparison.confidence or 0.95
        ci = f" ({level:.0%} CI [{fmt(interval[0])}, {fmt(interval[1])}])"
        if self.fraction is None:
            passed = (all(compare(v, self.comparison, bound, upper) for v in judged)
                      if isinstance(judged, tuple) else compare(judged, self.comparison, bound,
                                                                upper))
            measured = f"mean {self.stat} {fmt(value)}{ci} over {values.size} samples"
            expected = expected_text(self.comparison, bound, upper)
            threshold = bound
        else:
            share = self.fraction.value
            judged_share = interval[0] if self.comparison.confidence is not None else value
            passed = math.isfinite(judged_share) and judged_share >= share
            condition = f"{self.stat} {self.comparison.op} {fmt(bound)}"
            measured = (f"{fmt(value * 100)}% of {values.size} samples have {condition}{ci}; "
                        f"mean {self.stat} {fmt(float(np.mean(values)))}")
            expected = f"at least {fmt(share * 100)}% of samples with {condition}"
            threshold = share
        if self.comparison.confidence is not None:
            expected += f" for the whole {level:.0%} interval"
        p_value = lens_p(values, self.comparison, bound, upper,
                         None if self.fraction is None else self.fraction.value)
        row = {"lens": self.where, "statistic": self.stat, "value": value,
               "ci_low": interval[0], "ci_high": interval[1], "samples": int(values.size),
               "nan": int(np.sum(~np.isfinite(values))), "holds": passed}
        return Outcome(passed, measured, expected, value=value, rows=[row], interval=interval,
                       plot_data={"threshold": threshold, "claimed": self.where,
                                  "value": value, "interval": interval}, p_value=p_value)

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """The same number after every block (the curve the plot draws)."""
        from interp_assert.evaluate.logit_readout import layer_hooks

        bound, upper = evaluate_bounds(ctx, self.comparison)
        curve = []
        for label, hook in layer_hooks(ctx.subject.model):
            try:
                value, interval = self.headline(self.per_sample(ctx, hook), bound, upper)
            except QuantityError:
                continue
            curve.append((label, value, interval))
        outcome.plot_data["curve"] = curve

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.lens_plots import plot_lens_curve

        plot_lens_curve(self, outcome, ax)
