"""Syntax tree of expressions and the shared pieces of claim sentences.

Every node prints back to claim-language text (``str(node)``) so that parse -> print -> parse
round-trips.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

UNIT_SCALE = {"%": 0.01, "points": 0.01, "point": 0.01, "pp": 0.01, "nats": 1.0, "nat": 1.0}


def comparison_op(token: object) -> str:
    """A comparison token in its ASCII spelling (≥ -> >=, ≤ -> <=, ≠ -> !=)."""
    text = str(token)
    return {"≥": ">=", "≤": "<=", "≠": "!="}.get(text, text)


def label_text(item: object) -> str:
    """The text of a parsed ``label`` (the parser gives (text, column) pairs)."""
    return item[0] if isinstance(item, tuple) else str(item)


def format_number(value: float) -> str:
    """Shortest faithful text for a number (``inf``/``-inf``/``nan`` when not finite)."""
    if not math.isfinite(value):
        return repr(float(value))
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_unscaled(value: float, scale: float) -> str:
    """The text of ``value / scale`` (0.58 in %: "58") that reads back, times ``scale``, as
    exactly ``value`` (the parser scales decimals exactly)."""
    if scale == 1 or not math.isfinite(value):
        return format_number(value / scale)
    exact = (Decimal(repr(float(value))) / Decimal(repr(scale))).normalize()
    if exact == exact.to_integral_value() and abs(exact) < 10**15:
        return str(int(exact))
    return format(exact, "f") if Decimal("1e-6") <= abs(exact) < 10**15 else str(exact)


@functools.cache
def _terminal(name: str) -> re.Pattern[str]:
    """A terminal of grammar.lark (``NAME``, ``INT``) as a compiled regular expression."""
    text = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    match = re.search(rf"^{name}: /(.*)/\s*$", text, re.MULTILINE)
    if match is None:  # pragma: no cover - the grammar defines both
        raise LookupError(f"grammar.lark has no terminal {name}")
    return re.compile(match.group(1))


def quote_if_needed(text: str, *, number_ok: bool = True,
                    keywords: frozenset[str] = frozenset()) -> str:
    """``text`` as written in a claim: bare when it reads back as one NAME (or, with
    ``number_ok``, one INT, as labels may be), else in double quotes."""
    plain = _terminal("NAME").fullmatch(text) is not None or (
        number_ok and _terminal("INT").fullmatch(text) is not None)
    return text if plain and text not in keywords else f'"{text}"'


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
            raw = self.text or format_unscaled(self.value, UNIT_SCALE[self.unit])
            return f"{raw}%" if self.unit == "%" else f"{raw} {self.unit}"
        return self.text or format_number(self.value)


@dataclass(frozen=True)
class Ref(Node):
    """A name: a quantity, a label (the row it labels), or a weight in the checkpoint."""

    name: str

    def __str__(self) -> str:
        return quote_if_needed(self.name, number_ok=False)


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
        left = _operand(self.left) if self.op == "^" else str(self.left)
        return f"({left} {self.op} {self.right})"


@dataclass(frozen=True)
class Neg(Node):
    operand: Node

    def __str__(self) -> str:
        # parenthesised as a whole, so that it stays the base of ^, .T and [...]
        return f"(-{_operand(self.operand)})"


@dataclass(frozen=True)
class Mask(Node):
    """``left op right`` as a call's argument: 1 where it holds, 0 where it does not, NaN where
    either side is NaN (``count(norm(neurons) > 0.8)``)."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Where(Node):
    """``value where condition`` as a call's argument: the elements of ``value`` for which the
    condition holds (``mean(gate where logit >= 0)``)."""

    value: Node
    condition: Mask

    def __str__(self) -> str:
        return f"{self.value} where {self.condition}"


@dataclass(frozen=True)
class Vector(Node):
    """``[0.74, 2.83, 4.0]``: a literal vector (axis ``element``, positions 0, 1, ...)."""

    items: tuple[Node, ...]

    def __str__(self) -> str:
        return f"[{', '.join(map(str, self.items))}]"


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
        return f"{_operand(self.target)}[{', '.join(map(str, self.items))}]"


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
        return f"{_operand(self.operand)}.T"


def _operand(node: Node) -> str:
    """A node's text, parenthesised when it starts with a minus sign (a negative literal),
    which would otherwise bind looser than the ^, .T or [...] applied to it."""
    text = str(node)
    return f"({text})" if text.startswith(("-", "−")) else text


def _quote(label: str) -> str:
    return quote_if_needed(label)


@dataclass(frozen=True)
class Members:
    """A list of labels (``N1, N132, N0..N9``), optionally ``of`` an expression that owns them."""

    labels: tuple[str, ...]
    source: Node | None = None
    column: int = field(default=0, compare=False)

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
    #: ``with 95% confidence, sequentially``: an anytime-valid confidence sequence that may stop
    #: the pass early (evaluate/sequential.py)
    sequential: bool = False

    def __str__(self) -> str:
        if self.op == "in":
            text = f"in [{self.value}, {self.upper}]"
        elif self.op == "≈":
            text = f"≈ {self.value} ± {self.upper}"
        else:
            text = f"{self.op} {self.value}"
        if self.confidence is not None:
            text += f" with {format_unscaled(self.confidence, 0.01)}% confidence"
            text += ", sequentially" if self.sequential else ""
        return text


def referenced_names(node: Any) -> list[str]:
    """Every name an expression (or member list) refers to."""
    if isinstance(node, Ref):
        return [node.name]
    if isinstance(node, At):
        return [node.quantity]
    if isinstance(node, Members):
        names = list(node.labels)
        return names + (referenced_names(node.source) if node.source is not None else [])
    names: list[str] = []
    for child in vars(node).values() if hasattr(node, "__dict__") else ():
        if isinstance(child, tuple):
            for item in child:
                names.extend(referenced_names(item))
        elif isinstance(child, Node):
            names.extend(referenced_names(child))
    return names


def confidence_level(confidence: tuple[float, bool] | None) -> float | None:
    """The level of a claim kind's own ``[confidence]`` (the parser gives (level,
    sequentially)); ``, sequentially`` is refused: only comparisons of rates are sequential."""
    if confidence is None:
        return None
    level, sequential = confidence
    if sequential:
        from interp_assert.errors import QuantityError

        raise QuantityError("this claim kind cannot be evaluated sequentially",
                            hint="drop ', sequentially' (sequential evaluation covers "
                                 "comparisons of exact_match and token_accuracy)")
    return level
