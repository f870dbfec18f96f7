"""Claims on the features of a sparse dictionary (a ``sae:`` quantity):

* ``feature F12 of sae: frequency ≥ 5%`` (``at A3..A9``, ``over samples``, ``with 95%
  confidence``): the fraction of tokens (samples) on which the feature is nonzero, with a
  Wilson interval;
* ``feature F12 of sae: top 10 tokens all have carry`` (or ``all at A3..A9``): the tokens of
  its largest activations;
* ``feature F12 of sae writes "7" in top 3``: the rank of a token in ``W_dec[i] @ W_U``.

Ablating and steering a feature are in :mod:`interp_assert.claims.feature_causal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from lark import Tree

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.compare import evaluate_bounds, judged_value
from interp_assert.claims.interval_pvalues import rate_p
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import QuantityError, UnknownNameError, did_you_mean
from interp_assert.evaluate.feature_interventions import feature_indices
from interp_assert.evaluate.feature_sink import FeatureActivations
from interp_assert.evaluate.stats import wilson
from interp_assert.labels import expand_labels
from interp_assert.language import ast
from interp_assert.loading.data import load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FEATURE_GRAMMAR = r"""
_feature_head: "feature" label "of" NAME [feature_at]
feature_at: "at" member ("," member)*"""


def positions_text(positions: tuple[str, ...] | None) -> str:
    return f" at {', '.join(positions)}" if positions else ""


def at_labels(tree: Tree | None) -> tuple[str, ...] | None:
    return None if tree is None else tuple(ast.label_text(item) for item in tree.children)


def sae_definition(ctx: Context, name: str) -> Any:
    """The ``sae:`` quantity kind called ``name`` (a clear error for anything else)."""
    from interp_assert.evaluate.quantities.features import SparseFeatures

    definition = ctx.definitions.get(name)
    if definition is None:
        raise UnknownNameError(f"unknown quantity '{name}'" + did_you_mean(name, ctx.definitions),
                               hint="declare the dictionary: quantities: {NAME: {sae: folder}}")
    if not isinstance(definition.kind, SparseFeatures):
        raise QuantityError(f"'{name}' is not a sparse dictionary",
                            hint=f"define '{name}' with 'sae: path/to/folder'")
    return definition.kind


@dataclass
class FeatureClaim(Claim):
    """A claim on one feature of a ``sae:`` quantity, optionally at some positions."""

    feature: str = ""
    source: str = ""
    positions: tuple[str, ...] | None = None

    def planned_quantities(self, definitions: Any) -> set[str]:
        return {self.source}

    def activations(self, ctx: Context) -> tuple[FeatureActivations, int, str]:
        """The dictionary's activations, this feature's index, and the dataset's text."""
        kind = sae_definition(ctx, self.source)
        value = ctx.quantity(self.source)
        features = value.meta["features"]
        index = feature_indices(features.dictionary, [self.feature])[0]
        spec = kind.dataset(ctx)
        return features, index, f"{load_dataset(spec).n} samples of {spec.describe()}"

    def position_indices(self, ctx: Context) -> tuple[int, ...] | None:
        if self.positions is None:
            return None
        kind = sae_definition(ctx, self.source)
        loaded = load_dataset(kind.dataset(ctx))
        return tuple(loaded.position_index(label) for label in expand_labels(list(self.positions)))

    def position_names(self, ctx: Context, count: int) -> list[str]:
        loaded = load_dataset(sae_definition(ctx, self.source).dataset(ctx))
        names = loaded.positions
        return list(names) if names is not None and len(names) == count else \
            [str(i) for i in range(count)]

    def head(self) -> str:
        return f"feature {self.feature} of {self.source}{positions_text(self.positions)}"


@register_claim
@dataclass
class FeatureFrequency(FeatureClaim):
    """``feature F12 of sae at A5: frequency over samples ≥ 5% with 95% confidence``."""

    kind = "feature_frequency"
    grammar = r"""feature_frequency: _feature_head ":" "frequency" [FEATURE_OVER] comparison
FEATURE_OVER: /over\s+(tokens|samples)\b/""" + FEATURE_GRAMMAR

    over: str = "tokens"
    comparison: ast.Comparison | None = None

    @classmethod
    def build(cls, children: list[Any]) -> FeatureFrequency:
        label, name, at, over, comparison = children
        return cls(feature=ast.label_text(label), source=str(name), positions=at_labels(at),
                   over=str(over).split()[-1] if over is not None else "tokens",
                   comparison=comparison)

    def __str__(self) -> str:
        over = " over samples" if self.over == "samples" else ""
        return f"{self.head()}: frequency{over} {self.comparison}"

    def evaluate(self, ctx: Context) -> Outcome:
        assert self.comparison is not None
        features, index, dataset = self.activations(ctx)
        positions = self.position_indices(ctx)
        counts, trials = (features.sample_counts(positions) if self.over == "samples"
                          else features.token_counts(positions))
        fired = int(counts[index])
        frequency = fired / trials if trials else float("nan")
        level = self.comparison.confidence or 0.95
        interval = wilson(fired, trials, level)
        bound, upper = evaluate_bounds(ctx, self.comparison)
        judged = judged_value(frequency, interval, self.comparison)
        passed = all(compare(v, self.comparison, bound, upper) for v in (
            judged if isinstance(judged, tuple) else (judged,)))
        expected = expected_text(self.comparison, bound, upper)
        if self.comparison.confidence is not None:
            expected += f" for the whole {level:.0%} interval"
        measured = (f"{self.feature} nonzero on {fired} of {trials} {self.over} "
                    f"({fmt(frequency)}, {level:.0%} CI [{fmt(interval[0])}, "
                    f"{fmt(interval[1])}])")
        dense = features.dense(index)
        names = self.position_names(ctx, dense.shape[1])
        per_position = (dense > 0).mean(axis=0) if dense.size else np.zeros(0)
        rows = [{"feature": self.feature, "over": self.over, "fired": fired, "of": trials,
                 "frequency": frequency, "ci_low": interval[0], "ci_high": interval[1],
                 "holds": passed}]
        context = {"dictionary": features.dictionary.describe(), "dataset": dataset,
                   "interval": f"Wilson, {level:.0%}"}
        plot_data = {"values": dense[dense > 0].tolist(), "per_position": per_position.tolist(),
                     "positions": names, "chosen": list(positions or ()),
                     "frequency": frequency, "bound": bound, "upper": upper,
                     "feature": self.feature}
        p_value = (rate_p(fired, trials, self.comparison.op, bound, upper)
                   if self.comparison.confidence is not None else None)
        return Outcome(passed, measured, expected, value=frequency, rows=rows,
                       interval=interval, context=context, plot_data=plot_data, p_value=p_value)

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.feature_plots import plot_frequency

        plot_frequency(ax, outcome, str(self.comparison))


@register_claim
@dataclass
class FeatureTop(FeatureClaim):
    """``feature F12 of sae: top 10 tokens all have carry`` / ``... all at A3..A9``."""

    kind = "feature_top"
    grammar = r"""feature_top: _feature_head ":" "top" INT "tokens" "all" feature_where
?feature_where: "have" [FEATURE_NOT] NAME -> feature_have
    | "at" member ("," member)* -> feature_in
FEATURE_NOT: /not\b/"""

    count: int = 10
    field: str | None = None
    negate: bool = False
    within: tuple[str, ...] = ()

    @classmethod
    def build(cls, children: list[Any]) -> FeatureTop:
        label, name, at, count, where = children
        made = cls(feature=ast.label_text(label), source=str(name), positions=at_labels(at),
                   count=int(count))
        if where.data == "feature_have":
            negate, field = where.children
            made.field, made.negate = str(field), negate is not None
        else:
            made.within = tuple(ast.label_text(item) for item in where.children)
        if made.count < 1:
            raise QuantityError("'top N tokens' needs N ≥ 1")
        return made

    def condition(self) -> str:
        if self.field is not None:
            return f"have {'not ' if self.negate else ''}{self.field}"
        return f"at {', '.join(self.within)}"

    def __str__(self) -> str:
        return f"{self.head()}: top {self.count} tokens all {self.condition()}"

    def evaluate(self, ctx: Context) -> Outcome:
        features, index, dataset = self.activations(ctx)
        top = features.top(index, self.count, self.position_indices(ctx))
        loaded = load_dataset(sae_definition(ctx, self.source).dataset(ctx))
        names = self.position_names(ctx, features.n_pos)
        rows = []
        for sample, position, value in top:
            ok = self._holds(loaded, sample, position)
            rows.append({"sample": sample, "position": names[position], "activation": value,
                         "holds": ok})
        failing = [r for r in rows if not r["holds"]]
        short = len(top) < self.count
        passed = not failing and not short
        measured = (f"{len(rows) - len(failing)} of the top {len(rows)} tokens "
                    f"{self.condition()}")
        if short:
            measured += f"; {self.feature} is nonzero on only {len(top)} tokens"
        if failing:
            first = failing[0]
            measured += (f"; first exception: sample {first['sample']} at {first['position']} "
                         f"(activation {fmt(first['activation'])})")
        context = {"dictionary": features.dictionary.describe(), "dataset": dataset}
        return Outcome(passed, measured, f"all top {self.count} tokens {self.condition()}",
                       value=float(len(rows) - len(failing)), rows=rows, context=context,
                       plot_data={"rows": rows, "feature": self.feature,
                                  "condition": self.condition(), "short": short})

    def _holds(self, loaded: Any, sample: int, position: int) -> bool:
        if self.field is None:
            allowed = {loaded.position_index(label) for label in expand_labels(list(self.within))}
            return position in allowed
        values = np.asarray(loaded.field(self.field))
        if values.ndim == 1:
            cell = values[sample]
        elif values.ndim == 2 and values.shape[1] == load_dataset_width(loaded):
            cell = values[sample, position]
        else:
            raise QuantityError(f"dataset field '{self.field}' has shape {values.shape}; "
                                "'have FIELD' reads one value per sample [n] or per token "
                                "[n, positions]", hint="give the field one of those shapes")
        return bool(cell) != self.negate

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.feature_plots import plot_top

        plot_top(ax, outcome)


def load_dataset_width(loaded: Any) -> int:
    """The sequence length of a dataset (its input's second axis)."""
    return int(np.asarray(loaded.field(loaded.spec.input)).shape[1])


@register_claim
@dataclass
class FeatureWrites(FeatureClaim):
    """``feature F12 of sae writes "7" in top 3``: the token's rank in ``W_dec[i] @ W_U``."""

    kind = "feature_writes"
    grammar = r"""feature_writes: "feature" label "of" NAME "writes" label "in" "top" INT"""

    token: str = ""
    rank: int = 1

    @classmethod
    def build(cls, children: list[Any]) -> FeatureWrites:
        label, name, token, rank = children
        return cls(feature=ast.label_text(label), source=str(name),
                   token=ast.label_text(token), rank=int(rank))

    def __str__(self) -> str:
        token = self.token if self.token.isdigit() else f'"{self.token}"'
        return f"feature {self.feature} of {self.source} writes {token} in top {self.rank}"

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.evaluate.circuit_names import circuit_quantity

        dictionary = sae_definition(ctx, self.source).dictionary()
        index = feature_indices(dictionary, [self.feature])[0]
        w_u = circuit_quantity(ctx, "W_U").values
        if w_u.shape[0] != dictionary.d_in:
            raise QuantityError(f"{dictionary.describe()} has d_in {dictionary.d_in}, W_U "
                                f"{w_u.shape[0]} rows: its decoder does not write into the "
                                "residual stream W_U reads",
                                hint="'writes' needs a dictionary on the residual stream "
                                     "(or an MLP or attention output) of width d_model")
        logits = dictionary.W_dec[index].astype(np.float64) @ w_u
        token = token_id(ctx, self.token, len(logits))
        rank = 1 + int(np.sum(logits > logits[token]))
        order = np.argsort(-logits, kind="stable")
        rows = [{"token": int(t), "logit": float(logits[t]), "rank": i + 1,
                 "claimed": bool(t == token)} for i, t in enumerate(order[:max(10, self.rank)])]
        passed = rank <= self.rank and bool(np.isfinite(logits[token]))
        measured = (f"token {self.token} ranks {rank} of {len(logits)} in W_dec[{index}] @ W_U "
                    f"(logit {fmt(float(logits[token]))}; top token {int(order[0])}, "
                    f"{fmt(float(logits[order[0]]))})")
        return Outcome(passed, measured, f"rank ≤ {self.rank}", value=float(rank), rows=rows,
                       context={"dictionary": dictionary.describe()},
                       plot_data={"logits": logits.tolist(), "token": token, "rank": self.rank,
                                  "feature": self.feature})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.feature_plots import plot_writes

        plot_writes(ax, outcome)


def token_id(ctx: Context, text: str, vocab: int) -> int:
    """A token by its text through the model's tokenizer, else a number is its id."""
    tokenizer = getattr(ctx.subject.model, "tokenizer", None)
    if tokenizer is not None:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise QuantityError(f"'{text}' is {len(ids)} tokens for the model's tokenizer",
                                hint="name a single token")
        return int(ids[0])
    if not text.isdigit():
        raise QuantityError(f"the model has no tokenizer to read '{text}'",
                            hint="name the token by its id (writes 7 in top 3)")
    if int(text) >= vocab:
        raise QuantityError(f"token {text} is outside the vocabulary (0..{vocab - 1})")
    return int(text)
