"""Claim files are read over libyaml's events when PyYAML has them: the values, and every
place (line and column of each key and value, the text marks carry), equal the pure-Python
loader's, over every YAML file of the project and texts with non-ASCII before a key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interp_assert.errors import SpecError
from interp_assert.loading import yaml_source
from interp_assert.loading.yaml_source import _CParser, _make_loader, read_yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(_CParser is None, reason="PyYAML without libyaml")

EXTRA = [
    'claims:\n  - {id: "a≥b", claim: "L0H2 attends to \\"[CLS]\\" ≥ 0.5"}\n',
    "title: ≥≥≥ ünïcode\nclaims:\n  - id: x\n    claim: >\n      ablate L0H0 (mean):\n"
    "      exact-match drops by ≥ 99 points\n    why: |\n      two\n      lines\n",
    "a: &x [1, 2, {b: ≈}]\nc: *x\nd: 123456\ne: on\nf: true\n",
]


def _places(value: Any, path: str = "") -> list[tuple[Any, ...]]:
    """Every key's and value's place, recursively."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        marks = getattr(value, "key_marks", {})
        nodes = getattr(value, "value_nodes", {})
        mark = getattr(value, "mark", None)
        if mark is not None:
            found.append((path, "mapping", mark.line, mark.column))
        for key, item in value.items():
            if key in marks:
                found.append((path, str(key), marks[key].line, marks[key].column))
            node = nodes.get(key)
            if node is not None:
                found.append((path, str(key), "value", node.start_mark.line,
                              node.start_mark.column, node.end_mark.line, node.end_mark.column,
                              node.start_mark.buffer == node.end_mark.buffer))
            found += _places(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _places(item, f"{path}[{i}]")
    return found


def _texts() -> list[tuple[str, str]]:
    files = sorted(p for folder in ("specs", "examples", "tests")
                   for p in (ROOT / folder).rglob("*.yaml"))
    texts = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in files]
    return texts + [(f"extra{i}", text) for i, text in enumerate(EXTRA)]


TEXTS = _texts()


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=[name for name, _ in TEXTS])
def test_fast_loader_reads_as_the_pure_python_one(name: str, text: str) -> None:
    import yaml

    fast = yaml.load(text, Loader=_make_loader(name, fast=True))
    slow = yaml.load(text, Loader=_make_loader(name))
    assert fast == slow
    assert _places(fast) == _places(slow)
    if isinstance(fast, dict) and fast.value_nodes:
        node = next(iter(fast.value_nodes.values()))
        assert isinstance(node.start_mark.buffer, str)  # block sentences find their lines


def test_the_corpus_holds_the_specs() -> None:
    assert sum(name.startswith("specs/") for name, _ in TEXTS) >= 5


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n", "a: [1, 2\n", "a: 'open\n", "a:\n\tb: 1\n", "x: " + "1" * 400 + "\n"])
def test_problems_are_reported_as_before(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad YAML gives the pure-Python loader's error (the fast path steps aside)."""
    def outcome() -> Any:
        try:
            return ("value", read_yaml(text, "bad.yaml"))
        except SpecError as exc:
            return ("error", str(exc), exc.location)

    fast = outcome()
    monkeypatch.setattr(yaml_source, "_CParser", None)
    assert outcome() == fast


@pytest.mark.parametrize(("text", "refused"), [
    ("a: [" + ", ".join(["1"] * 60) + "]\n", True),  # no alias, more nodes than the limit
    ("a: &x [1, 2, 3]\nb: [*x, *x, *x, *x]\n", False),  # aliases within the limit
    ("a: &x [1, 2, 3, 4, 5, 6, 7, 8]\nb: [*x, *x, *x, *x, *x, *x]\n", True),  # beyond it
])
def test_expansion_is_bounded_with_and_without_aliases(
        text: str, refused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The expansion check runs when a file has aliases or more nodes than the limit: both
    loaders refuse the same files (here with the limit lowered to 50 values)."""
    import yaml

    monkeypatch.setattr(yaml_source, "MAX_YAML_VALUES", 50)
    for fast in (True, False):  # each loader on its own (read_yaml falls back to the slow one)
        def load() -> Any:
            return yaml.load(text, Loader=_make_loader("big.yaml", fast=fast))  # noqa: B023

        if refused:
            with pytest.raises(SpecError, match="expands to more than 50 values"):
                load()
        else:
            assert load()["b"] == [[1, 2, 3]] * 4
