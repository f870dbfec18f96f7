"""The cyclic garbage collector while claim files are collected (``resources.gc_paused``,
``gc_relieve``, ``settle_gc``): paused while claim objects are built, able to free garbage all
the same, and left as it was found once a pytest session ends."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import pytest
from conftest import claim_file_text, save_checkpoint

from interp_assert import resources


class _Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""

    other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """A two-object reference cycle nothing else refers to: garbage only a collection frees."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with resources.gc_paused():
        assert not gc.isenabled()
        with resources.gc_paused():  # a pause inside a pause changes nothing
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with resources.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_gc_relieve_frees_garbage_only_over_the_budget(monkeypatch) -> None:
    with resources.gc_paused():
        watched = _cycle()
        resources.gc_relieve()  # far under the budget: the garbage stays
        assert watched() is not None
        monkeypatch.setattr(resources, "GC_PAUSE_BUDGET", 0)
        resources.gc_relieve()
        assert watched() is None


def test_a_pytest_session_leaves_the_collector_as_it_found_it(pytester) -> None:
    """Collection pauses the collector and freezes what it built (so later collections skip
    it); the session gives it back: enabled, nothing left frozen, garbage still freed."""
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "model.claims.yaml").write_text(
        claim_file_text("- norm(N0) > 0\n- norm(N1) > 0"), encoding="utf-8")
    frozen_before = gc.get_freeze_count()
    result = pytester.runpytest("-p", "no:randomly", "--collect-only", "-q")
    assert result.ret == 0
    assert [line for line in result.outlines if "::" in line] == [
        "model.claims.yaml::norm-n0-0", "model.claims.yaml::norm-n1-0"]
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before
    watched = _cycle()
    gc.collect()
    assert watched() is None


pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


# An atexit handler registered before the plugin's runs after it (atexit is last in, first
# out): it reads what the interpreter's last collection will see.
_EXIT_PROBE = """
import atexit, gc, os

def _report():
    with open(os.environ["EXIT_PROBE"], "w") as out:
        out.write(str(gc.get_freeze_count()))

atexit.register(_report)
"""


@pytest.mark.parametrize("with_claims", [True, False])
def test_a_run_with_claims_leaves_its_objects_out_of_the_exit_collection(
        pytester, monkeypatch, with_claims: bool) -> None:
    """A pytest process that ran claims freezes what is alive when the interpreter exits, so
    its last collection scans nothing (``resources.freeze_at_exit``); a run without claim
    files leaves the exit as Python makes it."""
    probe = pytester.path / "frozen.txt"
    monkeypatch.setenv("EXIT_PROBE", str(probe))
    pytester.makeconftest(_EXIT_PROBE)
    if with_claims:
        save_checkpoint(pytester.path / "model.pt")
        (pytester.path / "model.claims.yaml").write_text(
            claim_file_text("- norm(N0) > 0\n- norm(N1) > -1"), encoding="utf-8")
    else:
        pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 if with_claims else 1)
    frozen = int(probe.read_text())
    if with_claims:
        assert frozen > 10_000  # torch and the run: every object alive at exit
    else:
        assert frozen == 0


def test_the_command_line_tool_leaves_its_objects_out_of_the_exit_collection(
        tmp_path) -> None:
    """``interp-assert check`` ends its process with the run: the same exit freeze."""
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "model.claims.yaml").write_text(claim_file_text("- norm(N0) > 0"),
                                                encoding="utf-8")
    script = _EXIT_PROBE + ("import sys\nfrom interp_assert.drivers.cli import main\n"
                            "sys.exit(main(['check', '-q', 'model.claims.yaml']))\n")
    probe = tmp_path / "frozen.txt"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "EXIT_PROBE": str(probe)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(probe.read_text()) > 10_000
