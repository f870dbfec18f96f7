"""Quantity kinds and expression functions."""

from .base import QUANTITY_KINDS, QuantityDef, QuantityKind, as_labelled, register_quantity
from .functions import FUNCTIONS, apply_function, register_function

__all__ = [
    "FUNCTIONS", "QUANTITY_KINDS", "QuantityDef", "QuantityKind", "apply_function",
    "as_labelled", "register_function", "register_quantity",
]
