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
from collections import OrderedDict
from collections.abc import Callable

from lark import Lark, Token, Tree

from interp_assert.language.tree_store import TreeStore

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


def terminal_patterns(parser: Lark) -> dict[str, tuple[str, int]]:
    """Each terminal's regular expression and ``re`` flags."""
    patterns: dict[str, tuple[str, int]] = {}
    for terminal in parser.terminals:
        flags = 0
        for flag in terminal.pattern.flags:
            flags |= getattr(re, flag.upper(), 0)
        patterns[terminal.name] = (terminal.pattern.to_regexp(), flags)
    return patterns


class ShapeCache:
    """The parse trees of one grammar, by sentence shape: kept in this process, and read from
    and added to a :class:`~interp_assert.language.tree_store.TreeStore` when one is given.
    ``parser`` is the grammar's parser, or a function that builds it (called only when a
    sentence must be parsed, or its terminals are needed and the store has none)."""

    def __init__(self, parser: Lark | Callable[[], Lark],
                 store: TreeStore | None = None) -> None:
        #: shape -> (tree, its tokens with their text)
        self._trees: OrderedDict[str, tuple[Tree, tuple[tuple[Token, str], ...]]] = \
            OrderedDict()
        self._parser = parser
        self._store = store
        self._patterns: dict[str, re.Pattern[str]] | None = None

    def _lark(self) -> Lark:
        if not isinstance(self._parser, Lark):
            self._parser = self._parser()
        return self._parser

    def _terminals(self) -> dict[str, re.Pattern[str]]:
        if self._patterns is None:
            source = (self._store.terminals if self._store is not None and self._store.terminals
                      else terminal_patterns(self._lark()))
            self._patterns = {name: re.compile(regexp, flags)
                              for name, (regexp, flags) in source.items()}
        return self._patterns

    def parse(self, text: str, full: Callable[[str], Tree]) -> tuple[Tree, dict[int, Token]]:
        """The tree of ``text`` and the tokens that replace its own (by ``id``): the tree of
        a sentence of the same shape with ``text``'s tokens when one was parsed (and every
        token still matches its terminal), else ``full(text)`` and no replacements. The tree
        is shared: read it, never change it."""
        key = shape(text)
        entry = self._trees.get(key)
        if entry is None and self._store is not None:
            stored = self._store.tree(key)
            if stored is not None:
                entry = self._keep(key, stored)
        if entry is not None:
            self._trees.move_to_end(key)
            replaced = self._replacements(entry[1], text)
            if replaced is not None:
                return entry[0], replaced
        tree = full(text)
        self._keep(key, tree)
        if self._store is not None:
            self._store.add(key, tree, terminal_patterns(self._lark()))
        return tree, {}

    def _keep(self, key: str, tree: Tree) -> tuple[Tree, tuple[tuple[Token, str], ...]]:
        tokens = tuple((token, str(token)) for token in tree.scan_values(
            lambda value: isinstance(value, Token)))
        self._trees[key] = entry = (tree, tokens)
        if len(self._trees) > MAX_SHAPES:
            self._trees.popitem(last=False)
        return entry

    def _replacements(self, tokens: tuple[tuple[Token, str], ...],
                      text: str) -> dict[int, Token] | None:
        """``text``'s tokens where they differ from the tree's, or None when one of them no
        longer matches its terminal."""
        replaced: dict[int, Token] = {}
        for token, old in tokens:
            value = text[token.start_pos:token.end_pos]
            if value == old:
                continue
            pattern = self._terminals().get(token.type)
            if pattern is None or pattern.fullmatch(value) is None:
                return None
            replaced[id(token)] = Token.new_borrow_pos(token.type, value, token)
        return replaced


def rebuild(tree: Tree, tokens: dict[int, Token]) -> Tree:
    """A copy of ``tree`` with ``tokens`` in place of its own (for inspection and tests)."""
    children = [rebuild(child, tokens) if isinstance(child, Tree)
                else tokens.get(id(child), child) for child in tree.children]
    return Tree(tree.data, children, tree.meta if not tree.meta.empty else None)


__all__ = ["MAX_SHAPES", "ShapeCache", "rebuild", "shape", "terminal_patterns"]
