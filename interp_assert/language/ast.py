"""Syntax tree of expressions and the shared pieces of claim sentences.

Every node prints back to claim-language text (``str(node)``) so that parse -> print -> parse
round-trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UNIT_SCALE = {"%": 0.01, "points": 0.01, "point": 0.01, "pp": 0.01, "nats": 1.0, "nat": 1.0}
_PLAIN_LABEL = re.compile(r"^[A-Za-z_0-9][\w·.{}+\-]*$")


def format_number(value: float) -> str:
    """Shortest faithful text for a number."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Node:
    """Base of expression nodes; ``column`` is 1-based within the sentence (0 when unknown)."""

    column: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    """A literal; ``unit`` is %, points, nat... and ``value`` is already scaled (99% -> 0.99)."""

    value: float
    unit: str | None = None
    text: str = ""

    def __str__(self) -> str:
        if self.unit:
            raw = self.text or format_number(self.value / UNIT_SCALE[self.unit])
            return f"{raw}%" if self.unit == "%" else f"{raw} {self.unit}"
        return self.text or format_number(self.value)


@dataclass(frozen=True)
class Ref(Node):
    """A name: a quantity, a label (the row it labels), or a weight in the checkpoint."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Call(Node):
    """``func(arg, ...)``: a function from the quantity-function registry."""

    func: str
    args: tuple[Node, ...]

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class BinOp(Node):
    """``left op right`` with op one of + - * / @ ^."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Neg(Node):
    operand: Node

    def __str__(self) -> str:
        return f"-({self.operand})"


@dataclass(frozen=True)
class Slice(Node):
    """``start:stop`` inside an index; label slices include their end (like pandas ``.loc``)."""

    start: Node | None
    stop: Node | None

    def __str__(self) -> str:
        return f"{self.start or ''}:{self.stop or ''}"


@dataclass(frozen=True)
class Index(Node):
    """``target[item, ...]``: items are labels, positions or slices, one per axis."""

    target: Node
    items: tuple[Node, ...]

    def __str__(self) -> str:
        return f"{self.target}[{', '.join(map(str, self.items))}]"


@dataclass(frozen=True)
class At(Node):
    """``error at A5 [with|without carry]``: one element of a per-position quantity, optionally
    in the stratum where a feature is (not) present."""

    quantity: str
    label: str
    stratum: str | None = None
    feature: str | None = None

    def __str__(self) -> str:
        text = f"{self.quantity} at {_quote(self.label)}"
        return f"{text} {self.stratum} {self.feature}" if self.stratum else text


@dataclass(frozen=True)
class Transpose(Node):
    operand: Node

    def __str__(self) -> str:
        return f"{self.operand}.T"


def _quote(label: str) -> str:
    return label if _PLAIN_LABEL.match(label) else f'"{label}"'


@dataclass(frozen=True)
class Members:
    """A list of labels (``N1, N132, N0..N9``), optionally ``of`` an expression that owns them."""

    labels: tuple[str, ...]
    source: Node | None = None
    column: int = 0

    def __str__(self) -> str:
        text = ", ".join(_quote(label) for label in self.labels)
        return f"{text} of {self.source}" if self.source is not None else text


@dataclass(frozen=True)
class Comparison:
    """The expectation part of a claim: ``>= 0.99``, ``in [a, b]``, ``≈ x ± tol``."""

    op: str
    value: Node
    upper: Node | None = None
    confidence: float | None = None

    def __str__(self) -> str:
        if self.op == "in":
            text = f"in [{self.value}, {self.upper}]"
        elif self.op == "≈":
            text = f"≈ {self.value} ± {self.upper}"
        else:
            text = f"{self.op} {self.value}"
        if self.confidence is not None:
            text += f" with {format_number(self.confidence * 100)}% confidence"
        return text
