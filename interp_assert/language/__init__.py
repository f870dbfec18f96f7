"""The claim language: grammar, syntax tree and parser."""

from interp_assert.language.ast import (
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
from interp_assert.language.parser import ParsedClaim, parse_claim, parse_expression

__all__ = [
    "At", "BinOp", "Call", "Comparison", "Index", "Members", "Neg", "Node", "Number", "ParsedClaim",
    "Ref", "Slice", "Transpose", "parse_claim", "parse_expression",
]
