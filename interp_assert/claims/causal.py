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

from interp_assert.claims.base import Context, register_claim
from interp_assert.claims.causal_base import (
    SHARED_GRAMMAR,
    CausalClaim,
    control_from,
    effect_from,
    parts_of,
    positions_of,
)
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
from interp_assert.language import ast
from interp_assert.language.ast import referenced_names
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
        """The clean activations of its components on the reference dataset (for ``mean``
        and ``resample``): planned, so the metric's clean pass captures them."""
        if self.how not in ("mean", "resample") or self.effect is None:
            return []
        reference = self.over or self._pinned(claim_file.quantities) or dataset
        layout = Layout.parse(claim_file.raw.get("layout"))
        parts = [component(label, layout) for label in self.parts]
        return [(reference, key, factory) for key, factory in reference_sinks(parts)]

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
        metric = self.effect.metric if self.effect is not None else None
        names = referenced_names(metric.expr) if metric is not None and metric.mask is None \
            else set()
        for name in sorted(names):
            definition = claim_file.quantities.get(name)
            need = getattr(definition.kind, "need", None) if definition is not None else None
            if need is None or definition.kind.config.get("data"):
                continue
            for data in (self.source, self.target):
                if data in claim_file.datasets:
                    key, factory = need(claim_file.datasets[data], claim_file.search_path)
                    sinks.append((data, key, factory))
        return sinks

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
