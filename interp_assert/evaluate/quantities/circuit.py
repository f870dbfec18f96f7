"""``circuit:`` quantities: circuit weights and scores under a name of the claim file's choice.

``ov: {circuit: W_OV}``, ``k-comp: {circuit: K-composition}``, or ``hn: {circuit: head-neuron,
directions: 3}`` (head→neuron scores, the best of each head's top 3 output directions). The same
names also work directly in expressions (``W_OV[L0H0]``); see
:mod:`interp_assert.evaluate.circuit_names`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp_assert.errors import SpecError, did_you_mean
from interp_assert.evaluate.circuit_layout import CIRCUIT_NAMES
from interp_assert.evaluate.circuit_weights import weights_for
from interp_assert.evaluate.quantities.base import QuantityKind, register_quantity
from interp_assert.labels import Axis, Labelled

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation


@register_quantity
class CircuitQuantity(QuantityKind):
    """A circuit quantity by name (W_Q ... W_U, W_OV, W_QK, Q/K/V-composition, head-neuron)."""

    key = "circuit"
    options = frozenset({"directions"})

    def validate(self) -> None:
        name = self.config["circuit"]
        if name not in CIRCUIT_NAMES:
            raise SpecError(f"quantity '{self.name}': unknown circuit '{name}'"
                            + did_you_mean(str(name), CIRCUIT_NAMES), self.location,
                            hint="circuits: " + ", ".join(sorted(CIRCUIT_NAMES)))
        directions = self.config.get("directions", 1)
        if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
            raise SpecError(f"quantity '{self.name}': 'directions' must be a whole number >= 1",
                            self.location)
        if "directions" in self.config and name != "head-neuron":
            raise SpecError(f"quantity '{self.name}': 'directions' is an option of head-neuron",
                            self.location)

    def compute(self, ev: Evaluation) -> Labelled:
        weights = weights_for(ev)
        name = self.config["circuit"]
        k = int(self.config.get("directions", 1))
        if name == "head-neuron" and k != 1:
            return Labelled(weights.head_neuron(k), (Axis("head", weights.head_labels()),
                                                     Axis("neuron", weights.neuron_labels())),
                            self.name)
        return weights.labelled(name).with_name(self.name)
