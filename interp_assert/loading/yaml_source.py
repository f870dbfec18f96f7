"""YAML of claim files read with places kept: every mapping remembers where its keys and
values start, so that errors name file, line and column; duplicate keys and YAML 1.1's
``on``/``yes`` booleans are refused. Also the helpers that place a claim sentence's column in
the file (sentences may span several lines)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from typing import Any

import yaml

try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _CParser = None

from interp_assert.errors import Location, SpecError, did_you_mean
from interp_assert.resources import MAX_DIGITS, MAX_YAML_DEPTH, MAX_YAML_VALUES


class LocatedMap(dict):
    """A YAML mapping that remembers where its keys and values start."""

    key_marks: dict[Any, yaml.Mark]
    value_nodes: dict[Any, yaml.Node]
    mark: yaml.Mark


class YamlProblem(str):
    """A value of the YAML that cannot be used (nested too deep, a number too long, a list as
    a mapping key), kept in its place as text so that only the claim, quantity or key that
    holds it fails, with :attr:`error`; the rest of the file still loads."""

    error: SpecError

    def __new__(cls, error: SpecError) -> YamlProblem:
        problem = super().__new__(cls, f"<{error.message}>")
        problem.error = error
        return problem


def find_problem(value: Any) -> YamlProblem | None:
    """The first :class:`YamlProblem` in a YAML value (keys included), or None."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, YamlProblem):
            return item
        if isinstance(item, dict | list) and id(item) not in seen:
            seen.add(id(item))
            stack.extend([*item.keys(), *item.values()] if isinstance(item, dict) else item)
    return None


_PROBLEM_TAG = "tag:interp-assert,2024:problem"
_COLLECTION_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_COLLECTION_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader that records marks, rejects duplicate and unhashable keys, and bounds the
    nesting depth (MAX_YAML_DEPTH) and the values aliases expand to (MAX_YAML_VALUES) before
    anything is built."""

    name: str
    _depth = 0

    # PyYAML's scanner looks at every possible simple key (one per open flow level) for each
    # token: quadratic in the nesting of a hostile '[[[[...' line. Its keys are kept in the
    # order they were saved (a key is removed before one is saved at its level), which is the
    # order of their token numbers, indices and lines, so the nearest is the first one and the
    # stale ones (an earlier line, or more than 1024 characters back) are a prefix.
    def next_possible_simple_key(self) -> int | None:
        for key in self.possible_simple_keys.values():
            return key.token_number
        return None

    def stale_possible_simple_keys(self) -> None:
        stale = []
        for level, key in self.possible_simple_keys.items():
            if key.line == self.line and self.index - key.index <= 1024:
                break
            if key.required:
                raise yaml.scanner.ScannerError("while scanning a simple key", key.mark,
                                                "could not find expected ':'",
                                                self.get_mark())
            stale.append(level)
        for level in stale:
            del self.possible_simple_keys[level]

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH and not self.check_event(yaml.AliasEvent):
            return self._skip_too_deep()
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _skip_too_deep(self) -> yaml.Node:
        """Skip a value nested deeper than MAX_YAML_DEPTH (its events, without recursion) and
        put a problem in its place."""
        start = self.peek_event().start_mark
        level = 0
        while True:
            event = self.get_event()
            level += isinstance(event, _COLLECTION_START) - isinstance(event, _COLLECTION_END)
            if level <= 0:
                break
        message = f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep"
        return yaml.ScalarNode(_PROBLEM_TAG, message, start, event.end_mark)

    def construct_problem(self, node: yaml.ScalarNode) -> YamlProblem:
        return YamlProblem(SpecError(str(node.value), mark_location(self.name, node.start_mark),
                                     hint="claim files need a few levels; flatten this value"))

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_DIGITS:
            return YamlProblem(SpecError(
                f"a number of {digits:,} digits, over the limit of {MAX_DIGITS}",
                mark_location(self.name, node.start_mark),
                hint="write large numbers with an exponent (1e300)"))
        return super().construct_yaml_int(node)

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node, self.name)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LocatedMap:
        self.flatten_mapping(node)
        result = LocatedMap()
        result.key_marks, result.value_nodes, result.mark = {}, {}, node.start_mark
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable) or isinstance(key, list | dict):
                key = YamlProblem(SpecError(
                    f"a mapping key must be a name, not a "
                    f"{'list' if isinstance(key, list) else 'mapping'}",
                    mark_location(self.name, key_node.start_mark),
                    hint="remove the '?' (a complex key) or quote the key"))
            if key in result:
                raise SpecError(f"duplicate key '{key}'",
                                mark_location(self.name, key_node.start_mark),
                                hint="each key may appear once in a mapping; rename or merge")
            result[key] = self.construct_object(value_node, deep=True)
            result.key_marks[key] = key_node.start_mark
            result.value_nodes[key] = value_node
        return result


_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                _LocatingLoader.construct_mapping)
_LocatingLoader.add_constructor(_PROBLEM_TAG, _LocatingLoader.construct_problem)
_LocatingLoader.add_constructor("tag:yaml.org,2002:int", _LocatingLoader.construct_yaml_int)
# YAML 1.1 reads on/off/yes/no as booleans ("on: pattern" would become True); only true/false
# are booleans in claim files.
_LocatingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_LocatingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


class _FastLocatingLoader(yaml.composer.Composer, yaml.constructor.SafeConstructor,
                          yaml.resolver.Resolver, _CParser or object):
    """:class:`_LocatingLoader` over libyaml's events: the same composition (depth bound),
    construction (places, duplicate keys, problems) and resolvers, with the scanning and
    parsing done in C; marks carry the text as the pure-Python loader's do."""

    name: str
    _depth = 0
    #: nodes composed, and whether an alias was among them: without aliases, a file's values
    #: are its nodes, and the expansion check is needed only past MAX_YAML_VALUES of them
    _nodes = 0
    _aliased = False

    def __init__(self, stream: str) -> None:
        _CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._text = stream

    def _mark(self, mark: Any) -> yaml.Mark:
        return yaml.Mark(self.name, mark.index, mark.line, mark.column, self._text, mark.index)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        alias = self.check_event(yaml.AliasEvent)
        self._aliased = self._aliased or alias
        if self._depth >= MAX_YAML_DEPTH and not alias:
            node = self._skip_too_deep()
        else:
            self._depth += 1
            try:
                node = yaml.composer.Composer.compose_node(self, parent, index)
            finally:
                self._depth -= 1
        if node is not None and not isinstance(node.start_mark, yaml.Mark):
            node.start_mark, node.end_mark = self._mark(node.start_mark), self._mark(
                node.end_mark)
        return node

    def get_single_node(self) -> Any:
        node = yaml.composer.Composer.get_single_node(self)
        if node is not None and (self._aliased or self._nodes > MAX_YAML_VALUES):
            _check_expansion(node, self.name)
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_DIGITS:
            return _LocatingLoader.construct_yaml_int(self, node)  # type: ignore[arg-type]
        return yaml.constructor.SafeConstructor.construct_yaml_int(self, node)

    _skip_too_deep = _LocatingLoader._skip_too_deep
    construct_problem = _LocatingLoader.construct_problem
    construct_mapping = _LocatingLoader.construct_mapping


_FastLocatingLoader.yaml_constructors = {
    **_LocatingLoader.yaml_constructors,
    "tag:yaml.org,2002:int": _FastLocatingLoader.construct_yaml_int}
_FastLocatingLoader.yaml_implicit_resolvers = _LocatingLoader.yaml_implicit_resolvers


def _check_expansion(root: yaml.Node, shown: str) -> None:
    """Refuse YAML whose aliases expand to more than MAX_YAML_VALUES values (a "billion
    laughs"): each node's expanded size is counted once, shared nodes included."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_VALUES:
            raise SpecError(f"the YAML expands to more than {MAX_YAML_VALUES:,} values (aliases "
                            "count each time they are used)", mark_location(shown,
                                                                            node.start_mark),
                            hint="use fewer aliases ('*name'), or write the values out")
        sizes[id(node)] = size


def mark_location(path: str, mark: yaml.Mark | None) -> Location | None:
    return Location(path, mark.line + 1, mark.column + 1) if mark is not None else None


def key_location(path: str, mapping: Any, key: Any) -> Location | None:
    marks = getattr(mapping, "key_marks", {})
    return mark_location(path, marks.get(key) or getattr(mapping, "mark", None))


def check_keys(mapping: Mapping, allowed: frozenset[str] | set[str], what: str,
               location: Location | None) -> None:
    """Raise a did-you-mean error for the first unknown key."""
    for key in mapping:
        if isinstance(key, YamlProblem):
            raise key.error
        if key not in allowed:
            where = key_location(location.path, mapping, key) if location else None
            raise SpecError(f"unknown key '{key}' in {what}" + did_you_mean(str(key), allowed),
                            where or location,
                            hint="allowed keys: " + ", ".join(sorted(allowed)))


def read_yaml(text: str, shown: str) -> Any:
    """Parse ``text`` (the file ``shown``) with places kept; invalid YAML is a SpecError at
    the place it went wrong."""
    if _CParser is not None:
        try:
            return yaml.load(text, Loader=_make_loader(shown, fast=True))
        except (yaml.YAMLError, SpecError, RecursionError, ValueError):
            pass  # the pure-Python loader reports the problem in its own words
    try:
        return yaml.load(text, Loader=_make_loader(shown))  # a SafeLoader subclass
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, shown) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", Location(shown, 1)) from None
    except RecursionError:  # MAX_YAML_DEPTH keeps this away
        raise SpecError(f"the YAML is nested too deeply (the limit is {MAX_YAML_DEPTH} levels)",
                        Location(shown, 1)) from None


def _yaml_error(exc: yaml.MarkedYAMLError, shown: str) -> SpecError:
    """Invalid YAML, placed where it went wrong; what was open there (a quoted text, a ``[``
    list) is named with where it started, and is the place when the file ended inside it."""
    mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context and context is not None and context != mark:
        message += (f" ({exc.context} that starts at line {context.line + 1}, column "
                    f"{context.column + 1})")
        if "end of stream" in exc.problem or "<stream end>" in exc.problem:
            mark = context
    return SpecError(message, mark_location(shown, mark),
                     hint="check indentation and quoting near this place")


def _make_loader(name: str, fast: bool = False) -> type[Any]:
    """The loader for the file ``name``: over libyaml's events (``fast``) or pure Python."""
    base: type[Any] = _FastLocatingLoader if fast else _LocatingLoader

    class Loader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self.name = name

    return Loader


def sentence_location(shown: str, node: yaml.Node | None, fallback: Location | None) -> Location:
    if node is None:
        return fallback or Location(shown, 1)
    mark = node.start_mark
    offset = 1 if getattr(node, "style", None) in ("'", '"') else 0
    if getattr(node, "style", None) in ("|", ">"):
        return _block_location(shown, mark)
    return Location(shown, mark.line + 1, mark.column + 1 + offset)


def _block_location(shown: str, mark: Any) -> Location:
    """Where a block scalar's (``claim: >`` / ``|``) text starts: its first non-blank line
    after the indicator, at that line's indentation."""
    lines = (mark.buffer or "").split("\n") if isinstance(mark.buffer, str) else []
    for number in range(mark.line + 1, len(lines)):
        content = lines[number].rstrip("\0")
        if content.strip():
            return Location(shown, number + 1, len(content) - len(content.lstrip(" ")) + 1)
    return Location(shown, mark.line + 2, 1)


def column_location(shown: str, node: yaml.Node | None, text: str, column: int,
                     start: Location) -> Location:
    """Where column ``column`` (1-based) of the sentence ``text`` is in the file, also when the
    sentence spans several lines (a block scalar ``claim: >``, or a folded plain or quoted
    one): each source line's text is found in the sentence in turn."""
    fallback = Location(shown, start.line, start.column + column - 1)
    mark, end = getattr(node, "start_mark", None), getattr(node, "end_mark", None)
    if mark is None or end is None or not isinstance(mark.buffer, str):
        return fallback
    style = getattr(node, "style", None)
    if end.line == mark.line and style not in ("|", ">"):
        return fallback
    quote = 1 if style in ("'", '"') else 0
    lines = mark.buffer.split("\n")
    pieces: list[tuple[int, int, str]] = []  # (0-based line, 0-based column, text)
    for number in range(mark.line, min(end.line, len(lines) - 1) + 1):
        line = lines[number].rstrip("\0")
        low, high = 0, len(line)
        if number == mark.line:
            if style in ("|", ">"):  # the indicator line holds no text of the sentence
                continue
            low = mark.column + quote
        if number == end.line:
            high = min(high, end.column - quote)
        piece = line[low:high]
        if piece.strip():
            pieces.append((number, low + len(piece) - len(piece.lstrip()), piece.strip()))
    offset, found, place = column - 1, 0, None
    for number, first, piece in pieces:
        at = text.find(piece, found)
        if at < 0:  # escapes in a quoted scalar: the text differs from the source
            return fallback
        if place is not None and offset < at:
            break
        place = (number, first + offset - at)
        found = at + len(piece)
    if place is None:
        return fallback
    return Location(shown, place[0] + 1, max(place[1], 0) + 1)
