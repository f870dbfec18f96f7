"""Parse trees shared between sentences of the same shape, so that a claim file of many
similar sentences runs the Earley parser once per shape instead of once per sentence.

Two sentences have the same *shape* when they differ only in digits (``L0H2`` and ``L3H11``
differ in length, so not those; ``L0H2`` and ``L3H1`` do) and in the letters and digits inside
quoted labels (``"[CLS]"`` and ``"[SEP]"``). No terminal of the grammar tells one digit from
another except by excluding some (``top-[1-9]``), and a quoted label is one token whatever its
letters, so the parse of one sentence of a shape is, position for position, a parse of every
other. The tree of the first sentence parsed is kept; a later sentence of the same shape reads
it with its own text in place of the tokens that differ (no copy of the tree is made), and is
accepted only when every token's text matches its terminal (otherwise, e.g. ``top-0``, the
sentence is parsed from scratch, and so reports its own syntax error).
``tests/test_parser_shapes.py`` checks that both routes give identical claims over every
sentence of the bundled specs, examples and tests.
"""

from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from collections.abc import Callable

from lark import Lark, Token, Tree

#: how many shapes each parser keeps (least recently used ones are dropped)
MAX_SHAPES = 2048

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_DIGIT = re.compile(r"\d")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def shape(text: str) -> str:
    """The sentence with every digit read as ``1`` and every letter or digit inside a quoted
    label as ``a``: sentences with the same shape share a parse tree (same length, same
    positions)."""
    parts, last = [], 0
    for match in _QUOTED.finditer(text):
        parts.append(_DIGIT.sub("1", text[last:match.start()]))
        parts.append(_ALNUM.sub("a", match.group(0)))
        last = match.end()
    parts.append(_DIGIT.sub("1", text[last:]))
    return "".join(parts)


class ShapeCache:
    """The parse trees of one parser, by sentence shape."""

    def __init__(self, parser: Lark) -> None:
        #: shape -> (tree, its tokens with their text)
        self._trees: OrderedDict[str, tuple[Tree, tuple[tuple[Token, str], ...]]] = \
            OrderedDict()
        self._patterns: dict[str, re.Pattern[str]] = {}
        for terminal in parser.terminals:
            flags = 0
            for flag in terminal.pattern.flags:
                flags |= getattr(re, flag.upper(), 0)
            self._patterns[terminal.name] = re.compile(terminal.pattern.to_regexp(), flags)

    def parse(self, text: str, full: Callable[[str], Tree]) -> tuple[Tree, dict[int, Token]]:
        """The tree of ``text`` and the tokens that replace its own (by ``id``): the tree of
        a sentence of the same shape with ``text``'s tokens when one was parsed (and every
        token still matches its terminal), else ``full(text)`` and no replacements. The tree
        is shared: read it, never change it."""
        key = shape(text)
        entry = self._trees.get(key)
        if entry is not None:
            self._trees.move_to_end(key)
            replaced = self._replacements(entry[1], text)
            if replaced is not None:
                return entry[0], replaced
        tree = full(text)
        tokens = tuple((token, str(token)) for token in tree.scan_values(
            lambda value: isinstance(value, Token)))
        self._trees[key] = (tree, tokens)
        if len(self._trees) > MAX_SHAPES:
            self._trees.popitem(last=False)
        return tree, {}

    def _replacements(self, tokens: tuple[tuple[Token, str], ...],
                      text: str) -> dict[int, Token] | None:
        """``text``'s tokens where they differ from the tree's, or None when one of them no
        longer matches its terminal."""
        replaced: dict[int, Token] = {}
        for token, old in tokens:
            value = text[token.start_pos:token.end_pos]
            if value == old:
                continue
            pattern = self._patterns.get(token.type)
            if pattern is None or pattern.fullmatch(value) is None:
                return None
            replaced[id(token)] = Token.new_borrow_pos(token.type, value, token)
        return replaced


def rebuild(tree: Tree, tokens: dict[int, Token]) -> Tree:
    """A copy of ``tree`` with ``tokens`` in place of its own (for inspection and tests)."""
    children = [rebuild(child, tokens) if isinstance(child, Tree)
                else tokens.get(id(child), child) for child in tree.children]
    return Tree(tree.data, children, tree.meta if not tree.meta.empty else None)


_CACHES: weakref.WeakKeyDictionary[Lark, ShapeCache] = weakref.WeakKeyDictionary()


def parse_by_shape(parser: Lark, text: str,
                   full: Callable[[str], Tree]) -> tuple[Tree, dict[int, Token]]:
    """``full(text)`` (the parser's own parse), or the tree of a sentence of the same shape
    and ``text``'s tokens to read in place of its own (see the module's docstring)."""
    cache = _CACHES.get(parser)
    if cache is None:
        cache = _CACHES[parser] = ShapeCache(parser)
    return cache.parse(text, full)


__all__ = ["MAX_SHAPES", "ShapeCache", "parse_by_shape", "rebuild", "shape"]
