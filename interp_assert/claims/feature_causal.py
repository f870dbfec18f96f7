"""Ablating and steering sparse-dictionary features, with the causal claims' effect clauses:

* ``ablate feature F12 of sae: exact-match drops by ≥ 10 points`` (``at A3..A9``): the
  hook's activation loses ``f_i(x) · W_dec[i]`` (a transcoder: its output hook loses
  ``f_i(x_in) · W_dec[i]``, ``x_in`` read at its input hook in the same pass);
* ``steer feature F12 of sae by 4 at A5: digit-error at A6 rises by ≥ 20 points``: the hook's
  activation gains ``4 · W_dec[i]``;
* ``... while 5 random sets of the same size drop ≤ 2 points``: random features of the same
  dictionary (seeded), as the other causal claims draw random heads.

The measurement, verdict and plot are :class:`~interp_assert.claims.causal_base.CausalClaim`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp_assert.claims.base import Context, planned_dataset, register_claim
from interp_assert.claims.causal_base import (
    CausalClaim,
    control_from,
    effect_from,
    positions_of,
)
from interp_assert.claims.features import sae_definition
from interp_assert.claims.outcome import fmt
from interp_assert.claims.planned_passes import Planned, by_text
from interp_assert.errors import QuantityError
from interp_assert.evaluate.feature_interventions import (
    feature_ablation,
    feature_indices,
    feature_steering,
)
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.transcoder_interventions import transcoder_ablation
from interp_assert.language import ast
from interp_assert.loading.data import DatasetSpec

_PARTS = r"""
_feature_ref: "feature" feature_parts "of" NAME
feature_parts: label ("," label)*"""


@dataclass
class FeatureCausal(CausalClaim):
    """An intervention on features of a ``sae:`` quantity at the dictionary's hook."""

    source: str = ""

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        return ctx.dataset_spec(None), None

    def _components(self, ctx: Context, labels: tuple[str, ...]) -> list[Any]:
        return list(labels)

    def _where(self, ctx: Context) -> tuple[Any, str]:
        kind = sae_definition(ctx, self.source)
        dictionary = kind.dictionary()
        return dictionary, kind.hook(dictionary)

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """The intervention by its text (its key holds the dictionary's digest, read only
        when the claim runs): claims intervening alike share the pass."""
        spec = planned_dataset(claim_file, dataset)
        return None if spec is None else (spec, by_text(
            self.kind, self.source, self.parts, self.positions, getattr(self, "scale", None)))

    control_noun = "features"

    def control_candidates(self, ctx: Context) -> list[str]:
        """Every feature of the dictionary (the claimed ones are checked to exist)."""
        dictionary, _ = self._where(ctx)
        feature_indices(dictionary, self.parts)
        return dictionary.labels()

    def plot_evidence(self, outcome: Any, ctx: Context) -> None:
        return None

    def tail(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        control = f" {self.control}" if self.control else ""
        return f"{at}: {self.effect}{control}"


@register_claim
@dataclass
class FeatureAblate(FeatureCausal):
    """``ablate feature F12 of sae: exact-match drops by ≥ 10 points``."""

    kind = "feature_ablate"
    grammar = r"""feature_ablate: "ablate" _feature_ref [causal_at] ":" _causal_tail""" \
        + _PARTS  # the causal rules (causal_at, _causal_tail) come with 'ablate'

    @classmethod
    def build(cls, children: list[Any]) -> FeatureAblate:
        parts, name, at, effect, control = children
        made = cls(parts=tuple(ast.label_text(p) for p in parts.children),
                   effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), source=str(name))
        if made.effect is not None and made.effect.change == "recovers":
            raise QuantityError("'recovers' belongs to patching; an ablation drops, rises or "
                                "changes a metric")
        return made

    def __str__(self) -> str:
        return f"ablate feature {', '.join(self.parts)} of {self.source}{self.tail()}"

    def intervene(self, ctx: Context, parts: list[Any],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        dictionary, hook = self._where(ctx)
        if dictionary.config.get("hook_name_out"):  # a transcoder: edit its output hook
            return transcoder_ablation(dictionary, hook, str(dictionary.config["hook_name_out"]),
                                       feature_indices(dictionary, parts), positions)
        return (feature_ablation(dictionary, hook, feature_indices(dictionary, parts),
                                 positions),)

    def describe(self, ctx: Context) -> str:
        dictionary, hook = self._where(ctx)
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        if dictionary.config.get("hook_name_out"):
            return (f"{', '.join(self.parts)} of transcoder {dictionary.path.name} ablated "
                    f"(y − f(x_in)·W_dec, x_in from {hook}) at "
                    f"{dictionary.config['hook_name_out']} {where}")
        return (f"{', '.join(self.parts)} of {dictionary.path.name} ablated (x − f·W_dec) at "
                f"{hook} {where}")


@register_claim
@dataclass
class FeatureSteer(FeatureCausal):
    """``steer feature F12 of sae by 4 at A5: digit-error at A6 rises by ≥ 20 points``."""

    kind = "feature_steer"
    grammar = r"""feature_steer: "steer" _feature_ref _steer_by [causal_at] ":" _causal_tail
_steer_by: "by" [FEATURE_SIGN] NUMBER
FEATURE_SIGN: /[-+−]/"""

    scale: float = 1.0

    @classmethod
    def build(cls, children: list[Any]) -> FeatureSteer:
        parts, name, sign, number, at, effect, control = children
        scale = float(number) * (-1 if sign is not None and str(sign) in "-−" else 1)
        made = cls(parts=tuple(ast.label_text(p) for p in parts.children),
                   effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), source=str(name), scale=scale)
        if made.effect is not None and made.effect.change == "recovers":
            raise QuantityError("'recovers' belongs to patching; steering drops, rises or "
                                "changes a metric")
        return made

    def __str__(self) -> str:
        scale = f"{'-' if self.scale < 0 else ''}{ast.format_number(abs(self.scale))}"
        return f"steer feature {', '.join(self.parts)} of {self.source} by {scale}{self.tail()}"

    def intervene(self, ctx: Context, parts: list[Any],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        dictionary, hook = self._where(ctx)
        hook = str(dictionary.config.get("hook_name_out") or hook)
        return (feature_steering(dictionary, hook, feature_indices(dictionary, parts),
                                 self.scale, positions),)

    def describe(self, ctx: Context) -> str:
        dictionary, hook = self._where(ctx)
        hook = str(dictionary.config.get("hook_name_out") or hook)
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        return (f"{fmt(self.scale)} · W_dec of {', '.join(self.parts)} ({dictionary.path.name}) "
                f"added at {hook} {where}")
