"""``metadata:`` quantities: what a checkpoint stores beside its weights, without Python.

::

    step:      {metadata: step}                 # the training step saved with the weights
    val_exact: {metadata: metrics.val_exact}    # a dotted path into nested dicts
    n_layers:  {metadata: config.n_layers}      # a config value
    losses:    {metadata: metrics.loss_curve}   # a list of numbers -> axis 'element'

A number (or bool, as 0/1) is a scalar, a list of numbers a vector, a dict of numbers a vector
labelled by its keys, a tensor itself. Text is refused with what it says; a missing key names the
keys that exist at that level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import QuantityError, SpecError, UnknownNameError, did_you_mean
from interp_assert.evaluate.quantities.base import QuantityKind, register_quantity
from interp_assert.labels import Axis, Labelled

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation


@register_quantity
class Metadata(QuantityKind):
    """A value stored in the checkpoint beside its state dict, by dotted path."""

    key = "metadata"

    def validate(self) -> None:
        path = self.config["metadata"]
        if not isinstance(path, str) or not path.strip() or any(
                not part for part in path.split(".")):
            raise SpecError(f"quantity '{self.name}': 'metadata' must be a dotted path such as "
                            "'step' or 'config.n_layers'", self.location)

    def compute(self, ev: Evaluation) -> Any:
        checkpoint = ev.subject.checkpoint
        if checkpoint is None:
            raise QuantityError(f"quantity '{self.name}' reads checkpoint metadata, but the "
                                "subject has no checkpoint")
        value: Any = checkpoint.metadata
        walked: list[str] = []
        for part in self.config["metadata"].split("."):
            value = _step(value, part, walked, checkpoint.path.name)
            walked.append(part)
        return _as_value(value, ".".join(walked))


def _step(value: Any, part: str, walked: list[str], where: str) -> Any:
    """One step of the path: a key of a mapping, or an index of a list."""
    at = ".".join(walked) or "the top level"
    if isinstance(value, Mapping):
        if part in value:
            return value[part]
        keys = [str(k) for k in value]
        raise UnknownNameError(f"checkpoint {where} has no metadata '{part}' at {at}"
                               + did_you_mean(part, keys),
                               hint=f"keys there: {', '.join(keys[:12]) or 'none'}")
    if isinstance(value, Sequence) and not isinstance(value, str) and part.lstrip("-").isdigit():
        index = int(part)
        if -len(value) <= index < len(value):
            return value[index]
        raise QuantityError(f"metadata {at} has {len(value)} items; there is no item {index}")
    raise QuantityError(f"metadata {at} of checkpoint {where} is a {type(value).__name__}, "
                        f"which has no '{part}'")


def _as_value(value: Any, path: str) -> Any:
    """The metadata value as something claims compare: a number, vector or tensor."""
    if hasattr(value, "numel"):  # a tensor
        return value
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    if isinstance(value, Mapping) and value and all(
            isinstance(v, bool | int | float) for v in value.values()):
        return Labelled(np.asarray([float(v) for v in value.values()]),
                        (Axis("key", tuple(str(k) for k in value)),), path)
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(
            isinstance(v, bool | int | float) for v in value):
        return Labelled(np.asarray(value, dtype=float), (Axis("element"),), path)
    shown = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
    raise QuantityError(f"metadata '{path}' is {shown[:80]}, not a number",
                        hint="name a number, a list of numbers or a dict of numbers")
