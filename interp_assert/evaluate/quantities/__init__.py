"""Quantity kinds and expression functions."""

from interp_assert.evaluate.quantities.base import (
    QUANTITY_KINDS,
    QuantityKind,
    quantity_kinds,
    register_quantity,
)
from interp_assert.evaluate.quantities.functions import FUNCTIONS, apply_function, register_function

__all__ = [
    "FUNCTIONS", "QUANTITY_KINDS", "QuantityKind", "apply_function", "quantity_kinds",
    "register_function", "register_quantity",
]
