"""Built-in quantity kinds: ``weight``, ``expr`` and ``call`` (and, imported from
:mod:`.behaviour`, ``activation``, ``distribution`` and ``metric``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interp_assert.errors import ClaimSyntaxError, SpecError
from interp_assert.evaluate.quantities import (  # noqa: F401  (registers forward-pass, circuit, metadata, table)
    behaviour,
    circuit,
    features,
    metadata,
    table,
)
from interp_assert.evaluate.quantities.base import QuantityKind, register_quantity
from interp_assert.language.ast import referenced_names
from interp_assert.usercode import accepts, call_user, resolve_callable

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation


@register_quantity
class Weight(QuantityKind):
    """A parameter or buffer by dotted name: ``weight: blocks.0.mlp.W_out``.

    ``transpose: true`` swaps the last two axes (e.g. to make W_in's neurons rows).
    """

    key = "weight"
    options = frozenset({"transpose"})

    def validate(self) -> None:
        if not isinstance(self.config["weight"], str):
            raise SpecError(f"quantity '{self.name}': 'weight' must be a dotted name",
                            self.location)

    def compute(self, ev: Evaluation) -> Any:
        tensor = ev.subject.weight(self.config["weight"])
        if self.config.get("transpose"):
            tensor = tensor.transpose(-1, -2)
        return tensor


@register_quantity
class Expression(QuantityKind):
    """An expression over other quantities, labels and weights: ``expr: norm(neurons)``."""

    key = "expr"

    def validate(self) -> None:
        from interp_assert.language import parse_expression

        text = self.config["expr"]
        if not isinstance(text, str):
            text = str(text)
        try:
            self.tree = parse_expression(text)
        except ClaimSyntaxError as exc:
            exc.message = f"in quantity '{self.name}': {exc.message}"
            raise exc.at(self.location) from None

    def references(self) -> set[str]:
        return set(referenced_names(self.tree))

    def compute(self, ev: Evaluation) -> Any:
        return ev.value(self.tree)


@register_quantity
class CallQuantity(QuantityKind):
    """A Python callable ``package.module:function`` (or ``file.py:function``).

    It receives the model (when the subject has a loader) or the state dict, plus ``args``;
    parameters named ``model``, ``state_dict``, ``checkpoint`` or ``subject`` get those.
    """

    key = "call"
    options = frozenset({"args"})

    def validate(self) -> None:
        if not isinstance(self.config["call"], str):
            raise SpecError(f"quantity '{self.name}': 'call' must be 'module:function'",
                            self.location)
        if not isinstance(self.config.get("args", {}), dict):
            raise SpecError(f"quantity '{self.name}': 'args' must be a mapping", self.location)

    def compute(self, ev: Evaluation) -> Any:
        function = resolve_callable(self.config["call"], ev.search_path, f"quantity '{self.name}'")
        subject = ev.subject
        kwargs = dict(self.config.get("args", {}))

        def state_dict() -> Any:
            checkpoint = subject.checkpoint
            return checkpoint.state_dict if checkpoint is not None else None

        provided = {"model": lambda: subject.model, "state_dict": state_dict,
                    "checkpoint": lambda: subject.checkpoint, "subject": lambda: subject}
        positional: list[Any] = []
        for name, get in provided.items():
            if accepts(function, name) and name not in kwargs:
                kwargs[name] = get()
        if not any(name in kwargs for name in provided):
            # the loader's model, else the state dict; nothing when the subject has neither
            model = subject.loader_model()
            weights = model if model is not None else state_dict()
            if weights is not None:
                positional.append(weights)
        value = call_user(function, f"quantity '{self.name}' ({self.config['call']})",
                          *positional, **kwargs)
        return host_value(value)


def host_value(value: Any) -> Any:
    """A tensor returned by user code, on whatever device, as a numpy array on the host
    (bfloat16 and float16 as float32, float64 kept); anything else unchanged."""
    if not hasattr(value, "detach") or not hasattr(value, "is_floating_point"):
        return value
    value = value.detach().cpu()
    if value.is_floating_point() and value.element_size() < 4:
        value = value.float()
    return value.numpy()
