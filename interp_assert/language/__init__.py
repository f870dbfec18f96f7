"""The claim language: grammar, syntax tree and parser."""

from .ast import (
    At,
    BinOp,
    Call,
    Comparison,
    Index,
    Members,
    Neg,
    Node,
    Number,
    Ref,
    Slice,
    Transpose,
)
from .parser import ParsedClaim, parse_claim, parse_expression

__all__ = [
    "At", "BinOp", "Call", "Comparison", "Index", "Members", "Neg", "Node", "Number", "ParsedClaim",
    "Ref", "Slice", "Transpose", "parse_claim", "parse_expression",
]
