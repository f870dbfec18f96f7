"""Quantity kinds and expression functions."""

from interp_assert.evaluate.quantities.base import (
    QUANTITY_KINDS,
    QuantityDef,
    QuantityKind,
    as_labelled,
    register_quantity,
)
from interp_assert.evaluate.quantities.functions import FUNCTIONS, apply_function, register_function

__all__ = [
    "FUNCTIONS", "QUANTITY_KINDS", "QuantityDef", "QuantityKind", "apply_function",
    "as_labelled", "register_function", "register_quantity",
]
