"""Causal claims: a metric measured before and after ablating or patching components.

* ``ablate L1H0 (mean): exact-match drops by ≥ 30 points``
* ``ablate L1H2, L1H3 at A3, A5..A7 (resample over other, seed 1): loss rises by ≥ 1 nat``
* ``ablate L1H2 (zero): loss on repeated tokens rises by ≥ 1 nat``
* ``patch L1H2 from clean into corrupted: logit-diff recovers ≥ 80%``
* ``... while random sets of the same size drop ≤ 5 points`` (or ``while 10 random sets ...``)

Components are heads ``L{l}H{h}`` (slice of ``hook_z``), neurons ``L{l}N{i}`` (slice of
``hook_post``) or module paths (whole output). The ablation is ``zero``, ``mean`` (the default:
the mean over the reference dataset, per position) or ``resample`` (another input's activation,
seeded); ``over NAME`` picks the reference dataset (default: the metric's). ``at`` restricts it
to positions. The metric is any expression (usually a ``metric:`` quantity) evaluated on the
claim's dataset; ``METRIC on FIELD tokens`` measures a ``loss``-style metric where the boolean
dataset field is true (``on not FIELD tokens``: where it is false).

``drops by`` is before − after, ``rises by`` after − before, ``changes by`` |after − before|;
for patching, *before* is the metric on the target dataset and ``recovers`` is
(patched − target) / (source − target). Random controls ablate (or patch) seeded random sets of
as many components of the same kind (from every layer, the claimed ones excluded); each draw
must satisfy the control's comparison.

The measurement the two kinds share lives in :mod:`interp_assert.claims.causal_base`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from interp_assert.claims.base import Context, planned_dataset, register_claim
from interp_assert.claims.causal_base import (
    SHARED_GRAMMAR,
    CausalClaim,
    control_from,
    effect_from,
    parts_of,
    positions_of,
)
from interp_assert.claims.planned_passes import Planned, by_text, metric_sinks
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.interventions import (
    ABLATIONS,
    Component,
    ablation,
    component,
    patching,
    reference_sinks,
)
from interp_assert.evaluate.planned_passes import ablation_stand_ins, patching_stand_ins
from interp_assert.language import ast
from interp_assert.loading.data import DatasetSpec


@register_claim
@dataclass
class Ablate(CausalClaim):
    """``ablate L1H0 (mean): exact-match drops by ≥ 30 points``."""

    kind = "ablate"
    grammar = r"""ablate: "ablate" causal_parts [causal_at] [ablate_how] ":" _causal_tail
ablate_how: "(" ABLATION ["over" NAME] ["," "seed" INT] ")"
ABLATION: /(zero|mean|resample)\b/""" + SHARED_GRAMMAR

    how: str = "mean"
    over: str | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Ablate:
        parts, at, how_tree, effect, control = children
        how, over, seed = ("mean", None, None) if how_tree is None else how_tree.children
        made = cls(parts=parts_of(parts), effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), seed=int(seed) if seed is not None else None,
                   how=str(how), over=str(over) if over is not None else None)
        if made.effect is not None and made.effect.change == "recovers":
            raise QuantityError("'recovers' belongs to patching ('patch X from A into B: ...')")
        return made

    def __str__(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        options = self.how + (f" over {self.over}" if self.over else "")
        options += f", seed {self.seed}" if self.seed is not None else ""
        control = f" {self.control}" if self.control else ""
        return f"ablate {', '.join(self.parts)}{at} ({options}): {self.effect}{control}"

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        return self._metric_dataset(ctx), None

    def _pinned(self, definitions: Mapping[str, Any]) -> str | None:
        """The dataset a single metric quantity is pinned to (``data:``), if any."""
        assert self.effect is not None
        expr = self.effect.metric.expr
        definition = definitions.get(expr.name) if isinstance(expr, ast.Ref) else None
        pinned = getattr(definition.kind, "config", {}).get("data") if definition else None
        return str(pinned) if pinned else None

    def _metric_dataset(self, ctx: Context) -> DatasetSpec:
        """The claim's dataset, or the one a single metric quantity is pinned to."""
        return ctx.dataset_spec(self._pinned(ctx.definitions))

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """The metric on the target, and the clean activations of its components on the
        reference dataset (for ``mean`` and ``resample``): planned, so the metric's clean
        pass captures them."""
        if self.effect is None:
            return []
        target = self._pinned(claim_file.quantities) or dataset
        metric = [(spec.name, key, factory) for spec, key, factory in metric_sinks(
            claim_file, self.effect.metric, planned_dataset(claim_file, target))]
        if self.how not in ("mean", "resample"):
            return metric
        reference = self.over or target
        layout = Layout.parse(claim_file.raw.get("layout"))
        parts = [component(label, layout) for label in self.parts]
        return [(reference, key, factory) for key, factory in reference_sinks(parts)] + metric

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """The ablation's stand-ins (by its text when it names positions, which are known
        only from the data)."""
        if self.effect is None or self.how not in ABLATIONS:
            return None
        target = planned_dataset(claim_file, self._pinned(claim_file.quantities) or dataset)
        reference = planned_dataset(claim_file, self.over) if self.over else target
        if target is None or reference is None:
            return None
        if self.positions is not None:
            return target, by_text("ablate", self.how, self.parts, self.positions,
                                   reference.name, self.seed)
        layout = Layout.parse(claim_file.raw.get("layout"))
        parts = [component(label, layout) for label in self.parts]
        return target, ablation_stand_ins(parts, self.how, reference, self.seed or 0)

    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        if self.how not in ABLATIONS:
            raise QuantityError(f"unknown ablation '{self.how}'")
        target = self._metric_dataset(ctx)
        reference = ctx.dataset_spec(self.over) if self.over else target
        return ablation(ctx, parts, self.how, target, reference, positions, self.seed or 0)

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        how = {"zero": "zero-ablated", "mean": "mean-ablated", "resample": "resample-ablated"}
        reference = ""
        if self.how != "zero":
            spec = ctx.dataset_spec(self.over) if self.over else self._metric_dataset(ctx)
            reference = f" (reference {spec.name}"
            reference += f", seed {self.seed or 0})" if self.how == "resample" else ")"
        return f"{', '.join(self.parts)} {how[self.how]} {where}{reference}"


@register_claim
@dataclass
class Patch(CausalClaim):
    """``patch L1H2 from clean into corrupted: logit-diff recovers ≥ 80%``."""

    kind = "patch"
    grammar = r"""
patch: "patch" causal_parts [causal_at] "from" NAME "into" NAME ":" _causal_tail"""

    source: str = ""
    target: str = ""

    @classmethod
    def build(cls, children: list[Any]) -> Patch:
        parts, at, source, target, effect, control = children
        return cls(parts=parts_of(parts), effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), source=str(source), target=str(target))

    def __str__(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        control = f" {self.control}" if self.control else ""
        return (f"patch {', '.join(self.parts)}{at} from {self.source} into {self.target}: "
                f"{self.effect}{control}")

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        return ctx.dataset_spec(self.target), ctx.dataset_spec(self.source)

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """The clean activations of its components on the source dataset, and its metric
        quantities on the source and the target: planned, so one clean pass of each serves
        them."""
        layout = Layout.parse(claim_file.raw.get("layout"))
        parts = [component(label, layout) for label in self.parts]
        sinks = [(self.source, key, factory) for key, factory in reference_sinks(parts)]
        for data in (self.source, self.target):
            sinks += [(spec.name, key, factory) for spec, key, factory in metric_sinks(
                claim_file, self.effect.metric if self.effect else None,
                claim_file.datasets.get(data))]
        return sinks

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """The patching's stand-ins (by its text when it names positions)."""
        source, target = claim_file.datasets.get(self.source), claim_file.datasets.get(
            self.target)
        if self.effect is None or source is None or target is None:
            return None
        if self.positions is not None:
            return target, by_text("patch", self.parts, self.positions, self.source)
        layout = Layout.parse(claim_file.raw.get("layout"))
        parts = [component(label, layout) for label in self.parts]
        return target, patching_stand_ins(parts, source)

    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        self._check_metric(ctx)
        return patching(ctx, parts, ctx.dataset_spec(self.source), ctx.dataset_spec(self.target),
                        positions)

    def _check_metric(self, ctx: Context) -> None:
        assert self.effect is not None
        expr = self.effect.metric.expr
        if isinstance(expr, ast.Ref) and expr.name in ctx.definitions:
            config = getattr(ctx.definitions[expr.name].kind, "config", {})
            if "data" in config:
                raise QuantityError(f"metric '{expr.name}' is pinned to dataset "
                                    f"'{config['data']}', but patching measures it on both "
                                    f"'{self.source}' and '{self.target}'",
                                    hint="remove 'data:' from the metric quantity")

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        return f"{', '.join(self.parts)} patched {where} from {self.source} into {self.target}"
