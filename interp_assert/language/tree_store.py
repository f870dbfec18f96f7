"""Parse trees kept on disk between runs, by grammar and sentence shape, so that a claim file
whose sentences were all parsed before is read without building the Earley parser at all.

The store is a cache like pytest's own: one JSON file per grammar (its name is the SHA-256 of
lark's version, the start rule and the grammar text, so a changed claim kind or lark version
starts a new file), holding the grammar's terminal patterns and, per sentence shape
(:func:`interp_assert.language.shapes.shape`), the parse tree of the first sentence of that
shape. Trees are JSON (rule names, token types, texts and positions), never pickles. A tree read
from the store is used exactly as an in-process shared tree is: every token of the new sentence
must still match its terminal, or the sentence is parsed from scratch.

Where: ``INTERP_ASSERT_PARSE_CACHE`` (``off`` turns it off), else
``$XDG_CACHE_HOME/interp-assert/parse``, else ``~/.cache/interp-assert/parse``. A file that
cannot be read or written is ignored: the store only ever saves time.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lark import Token, Tree
from lark.tree import Meta

ENV_VAR = "INTERP_ASSERT_PARSE_CACHE"
#: the most shapes one grammar's file keeps, and the largest file read (bytes)
MAX_STORED_SHAPES = 4096
MAX_FILE_BYTES = 16 * 2**20
_OFF = frozenset({"off", "none", "no", "false", "0"})
_POSITIONS = ("start_pos", "end_pos", "line", "column", "end_line", "end_column")


def folder() -> Path | None:
    """The store's folder, or None when it is turned off."""
    chosen = os.environ.get(ENV_VAR)
    if chosen is not None:
        return None if chosen.strip().lower() in _OFF or not chosen.strip() else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "interp-assert" / "parse"


def grammar_key(lark_version: str, start: str, text: str) -> str:
    """The name of a grammar's file: a digest of everything its parse trees depend on."""
    return hashlib.sha256(f"{lark_version}\0{start}\0{text}".encode()).hexdigest()[:32]


def encode(tree: Tree) -> Any:
    """A JSON-ready copy of a parse tree (tokens keep their type, text and positions)."""
    meta = tree.meta
    positions = None if getattr(meta, "empty", True) else [
        getattr(meta, name, None) for name in _POSITIONS]
    return {"r": str(tree.data), "m": positions,
            "c": [encode(child) if isinstance(child, Tree) else _encode_leaf(child)
                  for child in tree.children]}


def _encode_leaf(leaf: Any) -> Any:
    if leaf is None:
        return None
    if not isinstance(leaf, Token):
        raise TypeError(f"cannot store a parse-tree leaf of type {type(leaf).__name__}")
    return {"t": leaf.type, "v": str(leaf), "p": [getattr(leaf, name) for name in _POSITIONS]}


def decode(data: Any) -> Tree:
    """The parse tree :func:`encode` wrote (ValueError for anything else)."""
    if not isinstance(data, dict) or not isinstance(data.get("r"), str):
        raise ValueError("not a stored parse tree")
    meta = Meta()
    if data.get("m") is not None:
        meta.empty = False
        for name, value in zip(_POSITIONS, data["m"], strict=True):
            setattr(meta, name, value)
    children = [decode(child) if isinstance(child, dict) and "r" in child
                else _decode_leaf(child) for child in data.get("c", ())]
    return Tree(data["r"], children, meta)


def _decode_leaf(data: Any) -> Token | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise ValueError("not a stored token")
    start, end, line, column, end_line, end_column = data["p"]
    return Token(data["t"], data["v"], start_pos=start, line=line, column=column,
                 end_line=end_line, end_column=end_column, end_pos=end)


class TreeStore:
    """One grammar's stored trees: read once per process, written back at exit when new
    trees were added."""

    def __init__(self, key: str, where: Path | None = None) -> None:
        self.key = key
        self.path = None if where is None else where / f"{key}.json"
        self.terminals: dict[str, tuple[str, int]] = {}
        self._trees: dict[str, Any] = {}
        self._added: dict[str, Any] = {}
        self._read()

    def _read(self) -> None:
        if self.path is None:
            return
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                return
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("key") != self.key:
            return
        terminals, trees = data.get("terminals"), data.get("trees")
        if isinstance(terminals, dict) and isinstance(trees, dict):
            self.terminals = {str(name): (str(pattern[0]), int(pattern[1]))
                              for name, pattern in terminals.items()}
            self._trees = trees

    def tree(self, shape: str) -> Tree | None:
        """The stored tree of a shape, or None (also for an entry that cannot be read)."""
        data = self._trees.get(shape)
        if data is None or not self.terminals:
            return None
        try:
            return decode(data)
        except (ValueError, TypeError, KeyError):
            return None

    def add(self, shape: str, tree: Tree, terminals: dict[str, tuple[str, int]]) -> None:
        """Keep a new tree, to be written at exit."""
        if self.path is None or shape in self._trees:
            return
        try:
            encoded = encode(tree)
        except TypeError:
            return
        if not self._added:
            atexit.register(self.save)
        self.terminals = self.terminals or dict(terminals)
        self._trees[shape] = self._added[shape] = encoded

    def save(self) -> None:
        """Merge the new trees into the file (atomically; the newest shapes kept)."""
        if self.path is None or not self._added:
            return
        with contextlib.suppress(OSError, ValueError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            on_disk = TreeStore(self.key, self.path.parent)
            trees = {**on_disk._trees, **self._added}
            if len(trees) > MAX_STORED_SHAPES:
                trees = dict(list(trees.items())[-MAX_STORED_SHAPES:])
            text = json.dumps({"key": self.key, "terminals": self.terminals, "trees": trees},
                              ensure_ascii=False, separators=(",", ":"))
            import tempfile

            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        self._added = {}


__all__ = ["ENV_VAR", "TreeStore", "decode", "encode", "folder", "grammar_key"]
