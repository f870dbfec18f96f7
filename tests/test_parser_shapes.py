"""Sentences of the same shape share a parse tree (``language/shapes.py``): over every claim
sentence of the bundled specs, examples and tests, the shared tree gives exactly the claim (or
the syntax error) that the Earley parser gives on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lark import Transformer, v_args

from interp_assert.claims.builtin import all_kinds
from interp_assert.errors import ClaimSyntaxError
from interp_assert.language import parser as parsing
from interp_assert.language import tree_store
from interp_assert.language.shapes import ShapeCache, shape

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"""^\s*-?\s*claim:\s*(?P<q>["']?)(?P<text>.+?)(?P=q)\s*$""")
_CALL = re.compile(r"""parse_claim\((?P<q>["'])(?P<text>.+?)(?P=q)""")


def _yaml_sentences(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    claims = data.get("claims", []) if isinstance(data, dict) else []
    return [c["claim"] for c in claims if isinstance(c, dict) and isinstance(c.get("claim"), str)]


def corpus() -> list[str]:
    """Every claim sentence of specs/, examples/, the tests and the documentation."""
    found: list[str] = []
    for folder in ("specs", "examples"):
        for path in sorted((ROOT / folder).rglob("*.yaml")):
            found.extend(_yaml_sentences(path))
    texts = [*sorted((ROOT / "tests").glob("*.py")), ROOT / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
    for path in texts:
        for line in path.read_text(encoding="utf-8").splitlines():
            for pattern in (_LINE, _CALL):
                match = pattern.search(line)
                if match:
                    found.append(match.group("text"))
    return sorted(set(found))


def _variant(text: str) -> str:
    """The same shape, other characters: digits shifted, quoted letters rotated."""
    def quoted(match: re.Match[str]) -> str:
        return re.sub(r"[A-Za-z]", lambda m: "b" if m.group(0) != "b" else "c",
                      re.sub(r"\d", lambda m: str((int(m.group(0)) + 3) % 10), match.group(0)))

    parts, last = [], 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"', text):
        parts.append(re.sub(r"\d", lambda m: str((int(m.group(0)) + 7) % 10),
                            text[last:match.start()]))
        parts.append(quoted(match))
        last = match.end()
    parts.append(re.sub(r"\d", lambda m: str((int(m.group(0)) + 7) % 10), text[last:]))
    return "".join(parts)


KINDS = all_kinds()


def _outcome(text: str, parse: Any) -> tuple[Any, ...]:
    """What a sentence reads as: the claim and template (repr), or the syntax error."""
    lark = parsing._parser(tuple(KINDS.items()), "start")
    try:
        parsing.check_bounds(text)
        try:
            tree, tokens = parse(lark, text)
        except parsing.UnexpectedInput as exc:
            raise parsing._syntax_error(exc, text) from None
        claim, for_each = parsing._transform(tree, dict(KINDS), text, tokens)
    except ClaimSyntaxError as exc:
        return ("error", exc.message, exc.column, exc.hint)
    return ("claim", type(claim).__name__, repr(claim), repr(for_each))


SENTENCES = corpus()


def test_the_corpus_is_real() -> None:
    """The corpus holds the bundled claims and the tests' (so the comparison means something)."""
    assert len(SENTENCES) > 120
    assert "L0H2 attends to the previous token ≥ 0.95" in SENTENCES


def test_variants_share_the_shape() -> None:
    for text in SENTENCES:
        assert shape(_variant(text)) == shape(text), text


_WALK = parsing._ToAst


def _lark_reference(kinds: Any, tokens: Any = None) -> Transformer:
    """The rules of ``parser._ToAst`` run by lark's own ``Transformer`` on a tree of its own
    tokens: the reference the hand-written walk must match (same calls, same errors)."""
    assert not tokens
    walk = _WALK(kinds)
    methods: dict[str, Any] = {name: (lambda rule: lambda self, *children: getattr(
        walk, rule)(*children))(name) for name in parsing._RULES}
    methods["__default__"] = lambda self, data, children, meta: walk._default(
        str(data), children, meta)
    return v_args(inline=True)(type("Reference", (Transformer,), methods))()


@pytest.mark.parametrize("text", SENTENCES)
def test_shared_tree_reads_as_earley(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Earley alone (its tree read by lark's Transformer) and the tree of a same-shaped
    sentence (read by the parser's walk with this sentence's tokens) give the same claim or
    error, for the sentence and for a variant with other digits and quoted labels."""
    lark = parsing._parser(tuple(KINDS.items()), "start")
    cache = ShapeCache(lark)

    def earley(sentence: str) -> Any:
        with monkeypatch.context() as patched:
            patched.setattr(parsing, "_ToAst", _lark_reference)
            return _outcome(sentence, lambda parser, text: (parser.parse(text), {}))

    def shared(sentence: str) -> Any:
        return _outcome(sentence, lambda parser, text: cache.parse(text, parser.parse))

    first = shared(text)  # fills the cache (when it parses)
    assert first == earley(text)
    variant = _variant(text)
    assert shared(variant) == earley(variant), variant
    assert shared(text) == first


def test_a_token_that_no_longer_fits_is_parsed_again() -> None:
    """``top-0`` has the shape of ``top-3`` but no parse: it reports Earley's own error."""
    lark = parsing._parser(tuple(KINDS.items()), "start")
    cache = ShapeCache(lark)
    good = "top-3 sources of A4 include X4"
    assert shape(good) == shape("top-0 sources of A4 include X4")
    cache.parse(good, lark.parse)
    with pytest.raises(parsing.UnexpectedInput):
        cache.parse("top-0 sources of A4 include X4", lark.parse)



def _stored_grammar(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh grammar object (as a new process makes) whose trees live in ``folder``."""
    monkeypatch.setenv(tree_store.ENV_VAR, str(folder))
    return parsing._Grammar(tuple(KINDS.items()), "start")


def test_stored_trees_read_as_earley(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trees written to the on-disk store by one run and read by the next give, sentence for
    sentence, the claim (or error) the Earley parser gives, for the corpus and its variants;
    the second run never builds the parser."""
    first = _stored_grammar(tmp_path, monkeypatch)

    def read(grammar: Any, text: str) -> Any:
        return _outcome(text, lambda _lark, sentence: grammar.shapes.parse(
            sentence, lambda s: grammar.lark.parse(s)))

    expected = {text: read(first, text) for text in SENTENCES}
    first.store.save()
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = _stored_grammar(tmp_path, monkeypatch)
    parsed = [text for text in SENTENCES if expected[text][0] == "claim"]
    for text in parsed:
        assert read(second, text) == expected[text], text
    assert "lark" not in vars(second)  # the parser was never built
    for text in parsed:
        variant = _variant(text)
        assert read(second, variant) == read(first, variant), variant


def test_a_damaged_store_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store file that is not JSON, or holds a tree that is not one, costs only time."""
    grammar = _stored_grammar(tmp_path, monkeypatch)
    text = "exact-match >= 99% with 95% confidence"
    expected = _outcome(text, lambda _l, s: grammar.shapes.parse(s, grammar.lark.parse))
    grammar.store.save()
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    data["trees"] = {key: {"r": 5} for key in data["trees"]}
    path.write_text(json.dumps(data))
    again = _stored_grammar(tmp_path, monkeypatch)
    assert _outcome(text, lambda _l, s: again.shapes.parse(s, again.lark.parse)) == expected
    path.write_text("{not json")
    third = _stored_grammar(tmp_path, monkeypatch)
    assert _outcome(text, lambda _l, s: third.shapes.parse(s, third.lark.parse)) == expected


def test_the_store_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tree_store.ENV_VAR, "off")
    assert tree_store.folder() is None
    assert parsing._Grammar(tuple(KINDS.items()), "start").store is None
    monkeypatch.delenv(tree_store.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert tree_store.folder() == Path("/somewhere/interp-assert/parse")
