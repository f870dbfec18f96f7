"""Parse claim sentences and expressions with a lark grammar assembled from the claim kinds
it is handed."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import TYPE_CHECKING, Any

from lark import Lark, Token, Tree
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from interp_assert.errors import ClaimSyntaxError, InterpAssertError
from interp_assert.language import ast, tree_store
from interp_assert.language.shapes import ShapeCache
from interp_assert.resources import (
    MAX_DIGITS,
    MAX_NESTING,
    MAX_SENTENCE,
    MAX_TEMPLATE_INSTANCES,
    gc_relieve,
)

if TYPE_CHECKING:
    from interp_assert.claims.base import Claim

_READABLE = {
    "CMP": "a comparison (>, >=, <, <=, ==)", "NAME": "a name", "NUMBER": "a number",
    "INT": "a whole number", "UNIT": "a unit (%, points, nats)", "APPROX": "≈", "PM": "±",
    "LSQB": "'['", "RSQB": "']'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "ESCAPED_STRING": "a quoted label", "PLUS": "'+'", "MINUS": "'-'", "TIMES": "'*'",
    "DIVIDE": "'/'", "MATMUL": "'@'", "TRANSPOSE": "'.T'", "POW": "'^'", "COLON": "':'",
}


@dataclass(frozen=True)
class ForEach:
    """``for i in 0..9``: the claim is checked once per value, with ``{i}`` substituted."""

    variable: str
    start: int
    stop: int

    def __str__(self) -> str:
        return f"for {self.variable} in {self.start}..{self.stop}"


@dataclass
class ParsedClaim:
    """A parsed sentence: the claim object and an optional for-each template."""

    claim: Claim
    for_each: ForEach | None
    text: str

    def __str__(self) -> str:
        suffix = f" {self.for_each}" if self.for_each else ""
        return f"{self.claim}{suffix}"


def _column(meta: Any) -> int:
    """1-based column of a rule within the whole sentence (lark's own column restarts on each
    line of a sentence written over several lines)."""
    if getattr(meta, "empty", True):
        return 0
    position = getattr(meta, "start_pos", None)
    return position + 1 if isinstance(position, int) else getattr(meta, "column", 0)


def _col(token: Token) -> int:
    """1-based column of a token within the whole sentence."""
    position = getattr(token, "start_pos", None)
    return position + 1 if isinstance(position, int) else (token.column or 0)


class _ToAst:
    """Turns parse trees into :mod:`ast` nodes and claim objects: a walk over the tree that
    calls the method named after each rule, with the rule's children (as lark's
    ``Transformer`` with ``v_args(inline=True)`` would, at a fraction of its cost), or builds
    the claim kind of that name. ``tokens`` replaces tokens of a tree shared between sentences
    of one shape (:mod:`shapes`) with this sentence's."""

    def __init__(self, kinds: Kinds, tokens: Mapping[int, Token] | None = None) -> None:
        self._kinds = kinds
        self._tokens = tokens or {}

    def transform(self, tree: Tree) -> Any:
        return self._walk(tree)

    def _walk(self, tree: Tree) -> Any:
        tokens = self._tokens
        children = [self._walk(child) if isinstance(child, Tree)
                    else tokens.get(id(child), child) if tokens else child
                    for child in tree.children]
        data = str(tree.data)
        if data in _RULES:
            try:
                return getattr(self, data)(*children)
            except Exception as exc:  # as lark reports it: the rule that failed, and why
                raise VisitError(data, tree, exc) from exc
        return self._default(data, children, tree.meta)

    def _default(self, data: str, children: list[Any], meta: Any) -> Any:
        kind = self._kinds.get(data)
        if kind is not None:
            try:
                return kind.build(children)
            except InterpAssertError as exc:
                raise ClaimSyntaxError(exc.message, "", max(1, _column(meta)),
                                       hint=exc.hint) from None
        return Tree(data, children, meta)

    # expressions
    def binop(self, left: ast.Node, op: Token, right: ast.Node) -> ast.Node:
        symbol = {"−": "-", "×": "*", "**": "^"}.get(str(op), str(op))
        return ast.BinOp(symbol, left, right, column=_col(op))

    def neg(self, op: Token, operand: ast.Node) -> ast.Node:
        if isinstance(operand, ast.Number):  # a negative literal keeps its text ("-0", "-1e400")
            text = f"-{operand.text}" if operand.text else ""
            return ast.Number(-operand.value, operand.unit, text, column=_col(op))
        return ast.Neg(operand, column=_col(op))

    def index(self, target: ast.Node, *items: ast.Node) -> ast.Node:
        return ast.Index(target, tuple(items), column=target.column)

    def slice(self, start: ast.Node | None, stop: ast.Node | None) -> ast.Node:
        return ast.Slice(start, stop)

    def transpose(self, operand: ast.Node, _tok: Token) -> ast.Node:
        return ast.Transpose(operand, column=operand.column)

    def call(self, name: Token, *args: ast.Node | None) -> ast.Node:
        return ast.Call(str(name), tuple(a for a in args if a is not None), column=_col(name))

    def mask(self, left: ast.Node, op: Token, right: ast.Node) -> ast.Node:
        return ast.Mask(ast.comparison_op(op), left, right, column=left.column)

    def where(self, value: ast.Node, left: ast.Node, op: Token, right: ast.Node) -> ast.Node:
        condition = ast.Mask(ast.comparison_op(op), left, right, column=left.column)
        return ast.Where(value, condition, column=value.column)

    def vector(self, *items: ast.Node) -> ast.Node:
        return ast.Vector(tuple(items), column=items[0].column if items else 0)

    def ref(self, name: Token) -> ast.Node:
        return ast.Ref(str(name), column=_col(name))

    def at(self, name: Token, label: tuple[str, int], stratum: Token | None,
           feature: Token | None) -> ast.Node:
        return ast.At(str(name), label[0], str(stratum) if stratum else None,
                      str(feature) if feature else None, column=_col(name))

    def quoted_ref(self, text: Token) -> ast.Node:
        return ast.Ref(str(text)[1:-1], column=_col(text))

    def number(self, value: Token, unit: Token | None) -> ast.Number:
        unit_text = str(unit) if unit is not None else None
        return ast.Number(_scaled(str(value), unit_text), unit_text, str(value),
                          column=_col(value))

    # claim pieces
    def label(self, token: Token) -> tuple[str, int]:
        text = str(token)
        if token.type == "ESCAPED_STRING":
            text = text[1:-1]
        return (text, _col(token))

    def label_range(self, first: tuple[str, int], last: tuple[str, int]) -> tuple[str, int]:
        return (f"{first[0]}..{last[0]}", first[1])

    def members(self, *items: Any) -> ast.Members:
        *labels, source = items
        from interp_assert.labels import expand_labels

        names: list[str] = []
        for text, column in labels:
            try:
                names.extend(expand_labels(text) if ".." in text else [text])
            except InterpAssertError as exc:  # e.g. a backwards range: point at that label
                raise ClaimSyntaxError(exc.message, "", max(1, column), hint=exc.hint) from None
        return ast.Members(tuple(names), source, column=labels[0][1])

    def confidence(self, level: ast.Number, sequentially: Token | None = None
                   ) -> tuple[float, bool]:
        percent = level.unit == "%"
        if not (percent or level.unit is None) or not 0 < level.value < 1:
            raise ClaimSyntaxError(
                f"confidence level '{level}' is not a percentage between 0% and 100%", "",
                max(1, level.column), hint="write e.g. 'with 95% confidence'")
        return level.value, sequentially is not None

    def cmp(self, op: Token, value: ast.Node, confidence: tuple[float, bool] | None
            ) -> ast.Comparison:
        symbol = ast.comparison_op(op)
        level, sequential = confidence or (None, False)
        return ast.Comparison(symbol, value, confidence=level, sequential=sequential)

    def interval(self, low: ast.Node, high: ast.Node, confidence: tuple[float, bool] | None
                 ) -> ast.Comparison:
        level, sequential = confidence or (None, False)
        return ast.Comparison("in", low, high, confidence=level, sequential=sequential)

    def approx(self, _op: Token, value: ast.Node, _pm: Token, tol: ast.Node) -> ast.Comparison:
        return ast.Comparison("≈", value, tol)

    def for_each(self, name: Token, start: Token, stop: Token) -> ForEach:
        first, last = int(start), int(stop)  # at most MAX_DIGITS digits (checked before)
        if last < first:
            raise ClaimSyntaxError(f"the template range {first}..{last} runs backwards", "",
                                   _col(start), hint=f"write 'for {name} in {last}..{first}'")
        if last - first + 1 > MAX_TEMPLATE_INSTANCES:
            raise ClaimSyntaxError(
                f"the template range {first}..{last} has {last - first + 1:,} instances, over "
                f"the limit of {MAX_TEMPLATE_INSTANCES:,}", "", _col(start),
                hint="check a smaller range, or split the claim")
        return ForEach(str(name), first, last)

    def claim(self, inner: Any) -> Any:
        return inner

    def start(self, claim: Any, for_each: ForEach | None) -> tuple[Any, ForEach | None]:
        return claim, for_each


#: the rules :class:`_ToAst` turns into nodes itself (any other: a claim kind, or a subtree)
_RULES = frozenset(name for name in vars(_ToAst) if not name.startswith("_")) - {"transform"}


def _scaled(text: str, unit: str | None) -> float:
    """The literal's value with its unit applied exactly: 99.9% is 0.999, not 99.9 * 0.01."""
    if not unit:
        return float(text)
    scale = ast.UNIT_SCALE[unit]
    try:
        return float(Fraction(text) * Fraction(str(scale)))
    except OverflowError:  # beyond float range (1e400%): scaling cannot bring it back
        return float(text) * scale


Kinds = Mapping[str, "type[Claim]"]
#: the claim rule of a grammar without claim kinds (expressions only): matches nothing
_NO_CLAIMS = 'claim: "\\u0000"'


def _grammar_text(kinds: Kinds) -> str:
    base = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    if not kinds:
        return f"{base}\n{_NO_CLAIMS}\n"
    alternatives = " | ".join(kinds)
    fragments = "\n".join(kind.grammar for kind in kinds.values())
    return f"{base}\nclaim: {alternatives}\n{fragments}\n"


class _Grammar:
    """The grammar of a set of claim kinds and a start rule: its sentences' parse trees by
    shape (:mod:`shapes`, backed by the on-disk :mod:`tree_store`), and its lark parser, built
    only when a sentence of a new shape must be parsed."""

    def __init__(self, kinds: tuple[tuple[str, type[Claim]], ...], start: str) -> None:
        self.text = _grammar_text(dict(kinds))
        self.start = start
        where = tree_store.folder()
        self.store = tree_store.TreeStore(
            tree_store.grammar_key(lark_version, start, self.text), where) if where else None
        self.shapes = ShapeCache(lambda: self.lark, self.store)

    @functools.cached_property
    def lark(self) -> Lark:
        options = dict(parser="earley", lexer="dynamic", ambiguity="resolve",
                       propagate_positions=True, maybe_placeholders=True)
        return Lark(self.text, start=self.start, **options)


@functools.lru_cache(maxsize=8)
def _grammar(kinds: tuple[tuple[str, type[Claim]], ...], start: str) -> _Grammar:
    """The grammar with these claim kinds (cached per set of kinds)."""
    return _Grammar(kinds, start)


def _parser(kinds: tuple[tuple[str, type[Claim]], ...], start: str) -> Lark:
    """A lark parser for the grammar with these claim kinds (cached per set of kinds)."""
    return _grammar(kinds, start).lark


def parse_claim(text: str, kinds: Kinds) -> ParsedClaim:
    """Parse one claim sentence with the grammar of ``kinds`` (claim rule name -> class,
    handed in by the caller: the language never imports the claim kinds); raises
    :class:`ClaimSyntaxError` with a column on failure. Each call builds new objects, so
    nothing a caller changes is shared; a sentence of a shape already parsed reuses its parse
    tree (:mod:`shapes`)."""
    tree, tokens = _parse(_grammar(tuple(kinds.items()), "start"), text)
    claim, for_each = _transform(tree, kinds, text, tokens)
    claim.sentence = text
    return ParsedClaim(claim, for_each, text)


def parse_expression(text: str) -> ast.Node:
    """Parse a quantity expression such as ``norm(W_out) @ W_U`` (no claim kinds needed)."""
    tree, tokens = _parse(_grammar((), "expr"), text)
    return _transform(tree, {}, text, tokens)


def _transform(tree: Tree, kinds: Kinds, text: str,
               tokens: Mapping[int, Token] | None = None) -> Any:
    try:
        return _ToAst(kinds, tokens).transform(tree)
    except RecursionError:
        raise _too_deep(text, len(text)) from None
    except ClaimSyntaxError as exc:
        exc.text = text
        raise
    except VisitError as exc:
        original = exc.orig_exc
        if isinstance(original, ClaimSyntaxError):  # already points at its column
            original.text = text
            raise original from None
        column = max(1, _column(getattr(exc.obj, "meta", None)))
        if isinstance(original, InterpAssertError):  # point at the rule that failed
            raise ClaimSyntaxError(original.message, text, column, hint=original.hint) from None
        if isinstance(original, RecursionError):
            raise _too_deep(text, column - 1) from None
        if isinstance(original, ValueError | OverflowError):  # a number a claim kind cannot use
            raise ClaimSyntaxError(f"cannot read this part of the claim: {original}", text,
                                   column) from None
        raise


def _parse(grammar: _Grammar, text: str) -> tuple[Tree, dict[int, Token]]:
    """The parse tree of ``text`` and the tokens that replace its own (see :mod:`shapes`)."""
    if not text.strip():
        raise ClaimSyntaxError("empty claim", text, 1, hint="write a sentence such as "
                               "'exact-match >= 99%'")
    check_bounds(text)
    try:
        return grammar.shapes.parse(text, lambda sentence: _earley(grammar.lark, sentence))
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except RecursionError:  # the bounds above keep this away; never a raw RecursionError
        raise _too_deep(text, len(text)) from None


def _earley(parser: Lark, text: str) -> Tree:
    """Earley's parse; it leaves cyclic garbage (its parse forest) that a paused collector
    must still be able to free."""
    try:
        return parser.parse(text)
    finally:
        gc_relieve()


#: what opens a nesting level of an expression's syntax tree: an operator (a flat sum of n
#: terms nests n - 1 deep), a unary minus, a bracket (call, index, group) or a transpose
_LEVEL = re.compile(r"\*\*|[-−+*×/@^(\[]|\.T\b|ᵀ")
_DIGITS = re.compile(r"\d+")


def check_bounds(text: str) -> None:
    """Refuse, before parsing, a sentence longer than MAX_SENTENCE characters, a number of more
    than MAX_DIGITS digits, or an expression nested more than MAX_NESTING levels (the limits
    the parser and every step after it are safe within)."""
    if len(text) > MAX_SENTENCE:
        raise ClaimSyntaxError(f"the sentence is {len(text):,} characters long, over the limit "
                               f"of {MAX_SENTENCE:,}", text[:200], 1,
                               hint="split it into several claims or quantities")
    for match in _DIGITS.finditer(text):
        if len(match.group(0)) > MAX_DIGITS:
            raise ClaimSyntaxError(
                f"a number of {len(match.group(0)):,} digits, over the limit of {MAX_DIGITS}",
                text, match.start() + 1, hint="write large numbers with an exponent (1e300)")
    for count, match in enumerate(_LEVEL.finditer(text), start=1):
        if count > MAX_NESTING:
            raise _too_deep(text, match.start())


def _too_deep(text: str, position: int) -> ClaimSyntaxError:
    return ClaimSyntaxError(
        f"the expression is nested too deeply: more than {MAX_NESTING} operators, brackets "
        "and signs", text, min(position, len(text)) + 1,
        hint="split it into quantities (quantities: name: expression) and combine those")


def _syntax_error(exc: UnexpectedInput, text: str) -> ClaimSyntaxError:
    position = getattr(exc, "pos_in_stream", None)  # lark's column counts within a line
    if isinstance(position, int) and position >= 0:
        column = position + 1
    else:
        column = max(1, getattr(exc, "column", 1) or 1)
    if isinstance(exc, UnexpectedEOF) or column > len(text):
        column = len(text.rstrip()) + 1
        message = "the claim ends too early"
    elif isinstance(exc, UnexpectedCharacters):
        found = re.match(r"\S+", text[column - 1:])
        message = f"unexpected '{found.group(0) if found else text[column - 1]}'"
    else:
        message = "cannot read the claim here"
    expected = sorted({_READABLE.get(name, name.strip('"').lower())
                       for name in (getattr(exc, "allowed", None) or getattr(exc, "expected", None)
                                    or ()) if not name.startswith("__")})
    hint = f"expected {', '.join(expected[:8])}" if expected else ""
    return ClaimSyntaxError(message, text, column, hint=hint)
