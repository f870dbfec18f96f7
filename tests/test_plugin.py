"""The pytest plugin, driven through ``pytester`` (in-process unless isolation matters)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import claim_file_text, save_checkpoint

CLAIMS = """
- id: aligned
  claim: N0, N1, N3 cluster with cos > 0.9
  why: the three neurons write the same direction
- id: mixed
  claim: N0, N1, N4 cluster with cos > 0.9
- id: mono
  claim: A·V monotone increasing over digits
  tags: [fast, readout]
- id: syntax
  claim: N0,N1 cluster with cos >
- claim: norm(N0) > 0
"""


pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


def line_and_column(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of ``needle`` in ``text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in the text")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A checkpoint and ``model.claims.yaml`` in the pytester folder: three claims that hold
    (one without an id), one that fails and one with a syntax error."""
    save_checkpoint(pytester.path / "model.pt")
    path = pytester.path / "model.claims.yaml"
    path.write_text(claim_file_text(CLAIMS), encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:randomly", *args)


# ---- collection ----------------------------------------------------------------------------
#: the claims without the one whose sentence has a syntax error (which --collect-only reports)
VALID_CLAIMS = CLAIMS.replace("- id: syntax\n  claim: N0,N1 cluster with cos >\n", "")


def test_collect_only_lists_one_item_per_claim(pytester, project):
    project.write_text(claim_file_text(VALID_CLAIMS), encoding="utf-8")
    result = run(pytester, "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == ["model.claims.yaml::aligned", "model.claims.yaml::mixed",
                   "model.claims.yaml::mono", "model.claims.yaml::norm-n0-0"]
    assert result.ret == 0


def test_collect_only_reports_a_syntax_error(pytester, project):
    result = run(pytester, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    line, _ = line_and_column(project.read_text(), "N0,N1 cluster with cos >")
    assert f"model.claims.yaml:{line}:" in result.stdout.str()
    assert "claim 'syntax': the claim ends too early" in result.stdout.str()


def test_collection_needs_no_checkpoint(pytester):
    pytester.makefile(".claims.yaml", model=claim_file_text(VALID_CLAIMS,
                                                            checkpoint="absent.pt"))
    result = run(pytester, "--collect-only", "-q")
    assert "4 tests collected" in result.stdout.str()


def test_keyword_selection(pytester, project):
    result = run(pytester, "-k", "aligned or mono", "--interp-plots=never")
    result.assert_outcomes(passed=2, deselected=3)


def test_tags_become_markers(pytester, project):
    result = run(pytester, "-m", "fast", "--interp-plots=never", "-v")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["*model.claims.yaml::mono PASSED*"])
    result = run(pytester, "-m", "interp_claim and not readout", "--interp-plots=never")
    result.assert_outcomes(passed=2, failed=1, errors=1, deselected=1)


def test_last_failed(pytester, project):
    run(pytester, "--interp-plots=never").assert_outcomes(passed=3, failed=1, errors=1)
    result = run(pytester, "--lf", "--interp-plots=never", "-v")
    result.assert_outcomes(failed=1, errors=1)
    assert "rerun previous 2 failures" in result.stdout.str()
    result.stdout.fnmatch_lines(["*model.claims.yaml::mixed FAILED*"])


def test_plugin_can_be_disabled(pytester, project):
    result = run(pytester, "-p", "no:interp_assert", "--collect-only", "-q")
    assert "::" not in result.stdout.str()


# ---- results and reports -------------------------------------------------------------------
def test_pass_fail_and_error_next_to_plain_tests(pytester, project):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = run(pytester, "--interp-plots=never", "-rA")
    result.assert_outcomes(passed=4, failed=1, errors=1)
    result.stdout.fnmatch_lines(["PASSED test_plain.py::test_one"])
    for line in ("PASSED model.claims.yaml::aligned", "FAILED model.claims.yaml::mixed - ",
                 "ERROR model.claims.yaml::syntax - "):
        result.stdout.fnmatch_lines([f"{line}*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_failure_report(pytester, project):
    artifacts = pytester.path / "arts"
    result = run(pytester, "-k", "mixed", "--interp-artifacts", str(artifacts))
    result.assert_outcomes(failed=1, deselected=4)
    text = project.read_text()
    line, column = line_and_column(text, "N0, N1, N4 cluster")
    out = result.stdout.str()
    assert (f"claim 'mixed' at model.claims.yaml:{line}:{column}: "
            "N0, N1, N4 cluster with cos > 0.9") in out
    assert "subject: model.pt (sha256 " in out
    assert "does not hold: measured min pairwise cos" in out
    assert "expected every pair cos > 0.9" in out
    result.stdout.fnmatch_lines(["*a*b*cos*holds*", "*N0*N4*✗*"])
    pngs = sorted(artifacts.rglob("*.png"))
    assert [p.name for p in pngs] == ["mixed.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {pngs[0]}" in out


def test_plots_all_and_never(pytester, project):
    artifacts = pytester.path / "all-plots"
    result = run(pytester, "-k", "aligned", "--interp-plots=all", "--interp-artifacts",
                 str(artifacts))
    result.assert_outcomes(passed=1, deselected=4)
    assert [p.name for p in artifacts.rglob("*.png")] == ["aligned.png"]
    artifacts = pytester.path / "no-plots"
    result = run(pytester, "-k", "mixed", "--interp-plots=never",
                 "--interp-artifacts", str(artifacts))
    result.assert_outcomes(failed=1, deselected=4)
    assert not list(artifacts.rglob("*.png"))
    assert "plot:" not in result.stdout.str()


def test_ini_options(pytester, project):
    pytester.makeini("""
        [pytest]
        interp_assert_artifacts = ini-arts
        interp_assert_plots = never
    """)
    run(pytester, "-k", "mixed").assert_outcomes(failed=1, deselected=4)
    assert not list(pytester.path.rglob("*.png"))
    # the command line wins over the ini file; plots go to the ini's artifacts folder
    run(pytester, "-k", "mixed", "--interp-plots=failed")
    plots = list(pytester.path.rglob("*.png"))
    assert [p.name for p in plots] == ["mixed.png"]
    assert (pytester.path / "ini-arts") in plots[0].parents


def test_invalid_plots_ini_value(pytester, project):
    pytester.makeini("""
        [pytest]
        interp_assert_plots = sometimes
    """)
    result = run(pytester)
    assert result.ret != 0
    assert "sometimes" in result.stdout.str() + result.stderr.str()


# ---- errors -------------------------------------------------------------------------------
def test_syntax_error_with_line_column_and_caret(pytester, project):
    result = run(pytester, "--interp-plots=never")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    text = project.read_text()
    line, column = line_and_column(text, "N0,N1 cluster with cos >")
    sentence = "N0,N1 cluster with cos >"
    out = result.stdout.str()
    assert "ERROR at setup of claim syntax" in out
    # the error's column is the column of the end of the sentence in the file
    assert (f"model.claims.yaml:{line}:{column + len(sentence)}: claim 'syntax': "
            "the claim ends too early") in out
    result.stdout.fnmatch_lines([f"    {sentence}", "    " + " " * len(sentence) + "^"])


def test_syntax_error_in_quoted_sentence(pytester):
    save_checkpoint(pytester.path / "model.pt")
    path = pytester.path / "q.claims.yaml"
    path.write_text(claim_file_text("""
        - id: quoted
          claim: "norm(N0) >> 1"
    """))
    result = run(pytester)
    line, column = line_and_column(path.read_text(), "norm(N0) >> 1")
    assert f"q.claims.yaml:{line}:{column + 10}: claim 'quoted': unexpected '>'" in (
        result.stdout.str())


def test_syntax_error_in_block_scalar(pytester):
    save_checkpoint(pytester.path / "model.pt")
    path = pytester.path / "b.claims.yaml"
    path.write_text(claim_file_text("""
        - id: folded
          claim: >
            norm(N0) >> 1
    """))
    result = run(pytester)
    line, column = line_and_column(path.read_text(), "norm(N0) >> 1")
    assert f"b.claims.yaml:{line}:{column + 10}:" in result.stdout.str()


def test_unknown_label_did_you_mean(pytester):
    pytester.makefile(".claims.yaml", wide="""
        subject: none.pt
        quantities:
          neurons: {weight: w, labels: N0..N255}
        claims:
          - id: typo
            claim: N1320, N7 cluster with cos > 0.5
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    assert "unknown label 'N1320'; did you mean 'N132'" in result.stdout.str()


def test_missing_checkpoint(pytester):
    pytester.makefile(".claims.yaml", model=claim_file_text(CLAIMS, checkpoint="absent.pt"))
    result = run(pytester, "-k", "aligned or mono", "--interp-plots=never")
    result.assert_outcomes(errors=2, deselected=3)
    out = result.stdout.str()
    assert "checkpoint not found" in out
    assert "absent.pt" in out
    assert "paths are relative to the claim file" in out


@pytest.mark.parametrize("body, line", [
    ("claims:\n  - id: a\n    claim: [unclosed\n", 3),
    ("subject: model.pt\nclaims:\n  - id: a\n   claim: x > 1\n", 4),
    ("claims:\n  - claim: x > 1\n    claim: x > 2\n", 3),
])
def test_broken_yaml_is_a_collection_error(pytester, body, line):
    pytester.makefile(".claims.yaml", bad=body)
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = run(pytester, "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "ERROR collecting bad.claims.yaml" in out
    assert f"bad.claims.yaml:{line}:" in out


def test_unknown_top_level_key(pytester):
    pytester.makefile(".claims.yaml", bad="clams:\n  - x > 1\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    assert "unknown key 'clams' in the claim file; did you mean 'claims'" in result.stdout.str()


# ---- import cost ---------------------------------------------------------------------------
def test_plugin_import_is_light():
    code = textwrap.dedent("""
        import json, sys
        import interp_assert.drivers.pytest_plugin
        print(json.dumps(sorted(m for m in ("torch", "matplotlib", "pandas", "scipy")
                                if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
