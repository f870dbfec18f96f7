"""Path patching claims: the effect of sender heads through their direct paths to receivers.

* ``patch path L0H1 → L1H2 keys from clean into corrupted: loss-repeated recovers ≥ 50%``
* ``patch path L0H0, L0H1 → L1H2 keys and values, L1H3 queries from clean into corrupted: ...``
* ``patch path L0H1 → logits from clean into corrupted: loss-repeated recovers ≤ 10%``
* ``... at A3 ...`` patches the senders at those positions only; the random controls
  (``while random sets of the same size ...``) draw sender heads from the layers before every
  receiver.

A receiving head without ``queries`` / ``keys`` / ``values`` receives on all three. The passes
are those of :mod:`interp_assert.evaluate.path_patching`; effects and controls are the causal
claims' (:mod:`interp_assert.claims.causal_base`): *before* is the metric on the target dataset,
*after* with the path patched, ``recovers`` (after − before) / (source − before).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lark import Tree

from interp_assert.claims.base import Context, register_claim
from interp_assert.claims.causal import Patch
from interp_assert.claims.causal_base import (
    control_from,
    effect_from,
    parts_of,
    positions_of,
)
from interp_assert.claims.outcome import Outcome
from interp_assert.claims.path_plan import path_guesses, path_passes
from interp_assert.claims.planned_passes import Planned, PlannedPass
from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import Layout, parse_head
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.interventions import (
    Component,
    component,
    component_pool,
    reference_sinks,
)
from interp_assert.evaluate.path_patching import (
    END,
    FINAL,
    INPUTS,
    Receiver,
    frozen_layers,
    last_layer,
    mlp_input,
    path_interventions,
)
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _receivers(tree: Tree) -> tuple[Receiver, ...]:
    """Receivers of a ``path_receivers`` tree: an input word (``keys and values``) applies to
    the heads listed since the last one (``L1H0, L1H1 keys`` reads both heads' keys); heads
    without one receive on queries, keys and values."""
    found: list[Receiver] = []
    pending: list[str] = []
    for item in tree.children:
        label, *words = item.children
        text = ast.label_text(label)
        inputs = tuple(dict.fromkeys(str(w) for w in words if w is not None))
        if text in (END, FINAL) or mlp_input(text) is not None:
            if inputs:
                raise QuantityError(f"'{text}' takes no 'queries' / 'keys' / 'values'",
                                    hint="only a head receives on its queries, keys or values")
            found.append(Receiver(text))
            continue
        pending.append(text)
        if inputs:
            found.extend(Receiver(name, inputs) for name in pending)
            pending = []
    found.extend(Receiver(name, tuple(INPUTS)) for name in pending)
    return tuple(found)


def _has_mlps(ctx: Context) -> bool:
    """Whether the model has MLP neurons (an attention-only model has none to list)."""
    try:
        return bool(component_pool(ctx, "neuron"))
    except QuantityError:
        return False


@register_claim
@dataclass
class PathPatch(Patch):
    """``patch path L0H1 → L1H2 keys from clean into corrupted: loss recovers ≥ 50%``."""

    kind = "patch_path"
    grammar = r"""
patch_path: "patch" "path" causal_parts ("→" | "->") path_receivers [causal_at] _path_tail
_path_tail: "from" NAME "into" NAME ":" _causal_tail
path_receivers: path_receiver ("," path_receiver)*
path_receiver: label [PATH_INPUT ("and" PATH_INPUT)*]
PATH_INPUT: /(queries|keys|values)\b/"""

    receivers: tuple[Receiver, ...] = ()

    @classmethod
    def build(cls, children: list[Any]) -> PathPatch:
        parts, receivers, at, source, target, effect, control = children
        return cls(parts=parts_of(parts), receivers=_receivers(receivers),
                   effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), source=str(source), target=str(target))

    def _receiver_text(self) -> str:
        """The receivers as written: heads sharing their inputs listed before them."""
        groups: list[tuple[list[str], tuple[str, ...]]] = []
        for r in self.receivers:
            if groups and r.inputs and groups[-1][1] == r.inputs:
                groups[-1][0].append(r.label)
            else:
                groups.append(([r.label], r.inputs))
        return ", ".join(f"{', '.join(names)} {' and '.join(inputs)}".strip()
                         for names, inputs in groups)

    def __str__(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        control = f" {self.control}" if self.control else ""
        return (f"patch path {', '.join(self.parts)} → {self._receiver_text()}{at} from "
                f"{self.source} into {self.target}: {self.effect}{control}")

    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        self._check_metric(ctx)
        layers = 1 + max(head[0] for head in map(parse_head, component_pool(ctx, "head"))
                         if head is not None)
        return path_interventions(ctx, parts, self.receivers, ctx.dataset_spec(self.source),
                                  ctx.dataset_spec(self.target), positions, layers,
                                  Layout.parse(ctx.layout).hook("hook_z"),
                                  any(r.label == FINAL for r in self.receivers)
                                  and _has_mlps(ctx))

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """Patching's, and the target's ``hook_z`` of the layers that pass 2 freezes (known
        without the model when every receiver is a head; to the end of the model, guessed
        per layer, for ``logits`` and ``resid_final``, with every MLP's output too for
        ``resid_final``)."""
        sinks = super().planned_sinks(claim_file, dataset)
        layout = Layout.parse(claim_file.raw.get("layout"))
        senders = [component(label, layout) for label in self.parts]
        if not senders or any(s.kind != "head" for s in senders):
            return sinks
        if any(r.label in (END, FINAL) for r in self.receivers):
            return sinks + [(self.target, key, factory) for key, factory in
                            path_guesses(senders, self.receivers, layout.hook("hook_z"))]
        frozen = frozen_layers(senders, last_layer(self.receivers, 0))
        return sinks + [(self.target, key, factory) for key, factory in reference_sinks(frozen)]

    def planned_passes(self, claim_file: Any, dataset: str | None) -> list[PlannedPass]:
        """Pass 2's receiver inputs and pass 3's metric (patching every position; for
        ``logits`` and ``resid_final`` the frozen layers are known only from the model)."""
        return path_passes(self, claim_file)

    def planned_interventions(self, claim_file: Any, dataset: str | None) -> Planned:
        """None: :meth:`planned_passes` plans the passes whose stand-ins equal the real
        interventions."""
        return None

    def control_pool(self, ctx: Context, kind: str) -> list[str]:
        """Heads of the layers before every receiving head (every head for ``logits``)."""
        if kind != "head":
            raise QuantityError("path patching's random senders are heads")
        layers = [h[0] for h in map(parse_head, (r.label for r in self.receivers)) if h]
        layers += [mlp + 1 for r in self.receivers if (mlp := mlp_input(r.label)) is not None]
        first = min(layers) if layers else None
        return [label for label in component_pool(ctx, "head")
                if first is None or (parse_head(label) or (first, 0))[0] < first]

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        return (f"path {', '.join(self.parts)} → {self._receiver_text()} patched {where} from "
                f"{self.source} into {self.target} (other heads frozen on {self.target})")

    def evaluate(self, ctx: Context) -> Outcome:
        outcome = super().evaluate(ctx)
        source = self.datasets(ctx)[1]
        assert source is not None
        outcome.plot_data["source"] = self._metric(ctx, source).scalar()
        outcome.plot_data["before"] = outcome.rows[0]["before"]
        outcome.plot_data["after"] = outcome.rows[0]["after"]
        return outcome

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:
        """The bars need nothing beyond the outcome."""

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.causal_plot import plot_controls
        from interp_assert.claims.patching_plots import plot_path_bars

        if self.control is not None:
            plot_controls(ax, outcome, ", ".join(self.parts))
            return
        assert self.effect is not None
        plot_path_bars(ax, outcome, str(self.effect.metric), self.source, self.target,
                       f"path {', '.join(self.parts)} → {self._receiver_text()}")
