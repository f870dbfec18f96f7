"""Loading a model, a checkpoint or a tokenizer runs with Python's cyclic garbage collector
paused (what a load makes, mostly the libraries it imports, lives on; each collection on the
way would scan it all again), and the collector is running again afterwards, whether the load
succeeded or failed. A pause inside a pause (pytest's collection) leaves the collector off."""

from __future__ import annotations

import gc
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from interp_assert.errors import InterpAssertError
from interp_assert.loading import text_data
from interp_assert.loading.subject import LoadedSubject, SubjectSpec

LOADERS = textwrap.dedent("""
    import gc

    SEEN = []


    class Model:
        def eval(self):
            return self


    def load():
        SEEN.append(gc.isenabled())
        return Model()


    def broken():
        SEEN.append(gc.isenabled())
        raise RuntimeError("no weights here")


    def tokenizer():
        SEEN.append(gc.isenabled())
        return object()
""")


@pytest.fixture()
def loaders(tmp_path: Path) -> Path:
    (tmp_path / "gc_loaders.py").write_text(LOADERS, encoding="utf-8")
    return tmp_path


def _seen(folder: Path) -> list[bool]:
    """What the loaders saw: was the collector running while each ran?"""
    return sys.modules["gc_loaders"].SEEN  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _forget_module() -> Iterator[None]:
    yield
    sys.modules.pop("gc_loaders", None)


def test_model_loader_runs_with_the_collector_paused(loaders: Path) -> None:
    assert gc.isenabled()
    subject = LoadedSubject(SubjectSpec(loader="gc_loaders:load", search_path=(loaders,)))
    model = subject.model
    assert type(model).__name__ == "Model"
    assert _seen(loaders) == [False]
    assert gc.isenabled()


def test_a_failing_loader_leaves_the_collector_running(loaders: Path) -> None:
    subject = LoadedSubject(SubjectSpec(loader="gc_loaders:broken", search_path=(loaders,)))
    with pytest.raises(InterpAssertError, match="no weights here"):
        _ = subject.model
    assert _seen(loaders) == [False]
    assert gc.isenabled()


def test_a_pause_inside_a_pause_keeps_the_collector_off(loaders: Path) -> None:
    subject = LoadedSubject(SubjectSpec(loader="gc_loaders:load", search_path=(loaders,)))
    gc.disable()
    try:
        _ = subject.model
        assert not gc.isenabled()  # the outer pause is not ended by the inner one
    finally:
        gc.enable()
    assert _seen(loaders) == [False]


def test_tokenizer_loads_with_the_collector_paused(loaders: Path) -> None:
    made = text_data.load_tokenizer("gc_loaders:tokenizer", (loaders,))
    try:
        assert type(made) is object
        assert _seen(loaders) == [False]
        assert gc.isenabled()
    finally:
        text_data._TOKENIZERS.pop(("gc_loaders:tokenizer", (loaders,)), None)
