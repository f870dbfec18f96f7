"""The claim-file loader's scanner (``loading/yaml_source.py``) keeps PyYAML's simple keys in
linear time; it must read every document exactly as PyYAML's own scanner does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interp_assert.loading.yaml_source import _LocatingLoader

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "a: 1\nb: [1, {c: 2, d: [3, 4]}]\n",
    "? complex\n: value\nkey: {x: [1, 2], 'y z': {w: 3}}\n",
    "k: {" + "a" * 1100 + ": 1}\n",  # a flow key past 1024 characters
    "[" * 40 + "]" * 40 + "\n",
    "{a: {b: {c: [d, {e: f}]}}}\n",
    "- [a, b]\n- {c: d}\n- e: f\n  g: [h, {i: j}]\n",
    "a: b\nc\n",  # a required key with no ':' (a scanner error)
    "x: [1,\n  2,\n  {y: 3,\n   z: 4}]\n",
]


def _tokens(text: str, loader: type) -> list[tuple[str, object]]:
    try:
        return [(type(t).__name__, getattr(t, "value", None), t.start_mark.index)
                for t in yaml.scan(text, Loader=loader)]
    except yaml.YAMLError as exc:
        return [("error", str(exc))]


@pytest.mark.parametrize("text", TEXTS + [
    path.read_text(encoding="utf-8")
    for folder in ("specs", "examples") for path in sorted((ROOT / folder).rglob("*.yaml"))])
def test_same_tokens_as_pyyaml(text: str) -> None:
    assert _tokens(text, _LocatingLoader) == _tokens(text, yaml.SafeLoader)

